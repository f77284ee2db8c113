import type { Command } from 'commander';
import { action, makeContext } from './context.js';
import { printTransfer, REGISTRY_HELP } from './transfer-print.js';

const transfer = () => import('../registry/transfer.js');
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `blockport copy SRC DST`. */
export function registerCopy(program: Command): void {
  program
    .command('copy')
    .description('copy an image as it is (block form or standard, same digest) between any two places')
    .argument('<src>', 'any image reference')
    .argument('<dst>', 'oci:, oci-archive:, docker:// or NAME:TAG')
    .option('--creds <user:pass>', 'registry credentials')
    .option('--tls-verify <bool>', 'false: plain http to registries')
    .option('--mount-from <repo>', 'a repository of the destination registry to mount blobs from; repeatable', collect)
    .option('--jobs <n>', 'blobs at once (default 4)')
    .option('--no-referrers', "leave the image's signatures, SBOMs and attestations behind (default: they go with it)")
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Every blob reachable from what the source tag names is copied once, blobs the destination has
are skipped, and the destination is tagged to the same descriptor: the digest is kept.
${REGISTRY_HELP}

Examples:
  blockport copy app:2 oci:./export:2
  blockport copy docker://registry.example.com/team/app:2 docker://mirror.example.com/app:2
  blockport copy oci-archive:app-2.tar app:2`)
    .action(
      action(
        async (src: string, dst: string, flags) => {
          const bar = makeContext(Boolean(flags.json)).progress('copy');
          try {
            return await (await transfer()).copy(src, dst, flags, (p) => bar.update(p.bytes, p.total, 'blobs'));
          } finally {
            bar.stop();
          }
        },
        (r, ctx) => printTransfer('copied', r, ctx),
      ),
    );
}
