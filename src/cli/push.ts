import type { Command } from 'commander';
import { action, makeContext } from './context.js';
import { printTransfer, REGISTRY_HELP } from './transfer-print.js';

const transfer = () => import('../registry/transfer.js');
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `blockport push NAME:TAG docker://HOST/REPO:TAG`. */
export function registerPush(program: Command): void {
  program
    .command('push')
    .description('push a block-form image to a registry, in block form: only the blobs the registry lacks travel')
    .argument('<src>', 'block-form image, usually a store NAME:TAG')
    .argument('<dst>', 'docker://HOST[:PORT]/REPO:TAG')
    .option('--creds <user:pass>', 'registry credentials')
    .option('--tls-verify <bool>', 'false: plain http to the registry')
    .option('--mount-from <repo>', 'a repository of the same registry to mount blobs from when it holds them; repeatable', collect)
    .option('--jobs <n>', 'uploads at once (default 4)')
    .option('--no-referrers', "leave the image's signatures, SBOMs and attestations behind (default: they go with it)")
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Each blob is asked for (HEAD) before it is sent; what the registry has is skipped, what another
--mount-from repository has is mounted, big blobs go up in chunks. The tag names one transport
manifest listing every blob (docs/spec.md 5), so plain clients refuse it and copiers copy it whole.
${REGISTRY_HELP}

Examples:
  blockport push app:2 docker://registry.example.com/team/app:2
  blockport push app:2 docker://127.0.0.1:5000/app:2 --mount-from team/base --json`)
    .action(
      action(
        async (src: string, dst: string, flags) => {
          const bar = makeContext(Boolean(flags.json)).progress('push');
          try {
            return await (await transfer()).push(src, dst, flags, (p) => bar.update(p.bytes, p.total, 'blobs'));
          } finally {
            bar.stop();
          }
        },
        (r, ctx) => printTransfer('pushed', r, ctx),
      ),
    );
}
