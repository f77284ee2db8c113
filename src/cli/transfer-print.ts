import type { TransferResult } from '../registry/transfer.js';
import type { CliContext } from './context.js';
import { humanSize } from './format.js';

const tally = (t: { blobs: number; bytes: number }) => `${t.blobs} blob${t.blobs === 1 ? '' : 's'}, ${humanSize(t.bytes)}`;

/** The lines push, pull and copy print: what moved, what was there, what a plain skopeo copy would move. */
export function printTransfer(verb: string, r: TransferResult & { resumed?: { blobs: number; bytes: number } }, ctx: CliContext): void {
  const s = r.stats;
  ctx.say(`${verb} ${r.source} -> ${r.destination}`);
  ctx.say(`image ${r.top.digest}`);
  ctx.say(`moved     ${tally(s.moved)}`);
  if (r.uploaded) ctx.say(`  sent    ${tally(r.uploaded)}${r.mounted ? `; ${r.mounted} mounted from another repository, no bytes sent` : ''}`);
  if (r.resumed?.blobs) ctx.say(`resumed   ${tally(r.resumed)} verified by an interrupted run`);
  ctx.say(`present   ${tally(s.present)} already there`);
  if (r.referrers) ctx.say(`referrers ${r.referrers.referrers} signature(s), SBOM(s) or attestation(s) written beside it (${tally(r.referrers)}; ${tally(r.referrers.moved)} moved)`);
  const ratio = s.moved.bytes > 0 ? ` (${(s.standard.bytes / s.moved.bytes).toFixed(1)}x)` : '';
  ctx.say(`skopeo copy of the standard image would move ${tally(s.standard)}${ratio}: whole layers, uncompressed sizes`);
}

/** Options every registry command takes, in its help. */
export const REGISTRY_HELP = `
Registry options: --creds USER:PASS (else $BLOCKPORT_REGISTRY_AUTH, $REGISTRY_AUTH_FILE,
$XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json with its credHelpers/credsStore);
--tls-verify=false speaks plain http to every registry (localhost always; others listed in
$BLOCKPORT_INSECURE_REGISTRIES=host:port,...).`;
