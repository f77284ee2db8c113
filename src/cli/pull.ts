import type { Command } from 'commander';
import { action, makeContext } from './context.js';
import { printTransfer, REGISTRY_HELP } from './transfer-print.js';

const transfer = () => import('../registry/transfer.js');

/** `blockport pull docker://HOST/REPO:TAG NAME:TAG`. */
export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('pull a block-form image from a registry into the store, fetching only the blobs the store lacks')
    .argument('<src>', 'docker://HOST[:PORT]/REPO:TAG (or @DIGEST) of a block-form image')
    .argument('<dst>', 'NAME:TAG in the store')
    .option('--creds <user:pass>', 'registry credentials')
    .option('--tls-verify <bool>', 'false: plain http to the registry')
    .option('--jobs <n>', 'downloads at once (default 4)')
    .option('--no-referrers', "leave the image's signatures, SBOMs and attestations behind (default: they go with it)")
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Like apply: blobs are fetched into a staging folder of the store, each verified before it is
named by its digest; block-form layers are checked to splice into their diff_ids; only then do
the blobs move into the store and the tag appear. A killed pull continues where it stopped when
run again. A dropped connection is resumed with a Range request.
${REGISTRY_HELP}

Examples:
  blockport pull docker://registry.example.com/team/app:2 app:2
  blockport pull docker://127.0.0.1:5000/app:2 app:2 --json && blockport load app:2`)
    .action(
      action(
        async (src: string, dst: string, flags) => {
          const bar = makeContext(Boolean(flags.json)).progress('pull');
          try {
            return await (await transfer()).pull(src, dst, flags, (p) => bar.update(p.bytes, p.total, 'blobs'));
          } finally {
            bar.stop();
          }
        },
        (r, ctx) => printTransfer('pulled', r, ctx),
      ),
    );
}
