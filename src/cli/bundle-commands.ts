import type { Command } from 'commander';
// the bundle code is imported when its command runs: the other commands start without it
import type { ApplyResult } from '../bundle/apply.js';
import type { ApplyPlan } from '../bundle/apply-dry-run.js';
import type { FsckReport } from '../store/fsck.js';
import type { Inventory } from '../bundle/inventory.js';
import type { MakeBundleResult } from '../bundle/make.js';
import { BlockportError } from '../errors.js';
import { checkNameTag } from '../oci/reference.js';
import { openImage, parseRef, transportOf } from '../oci/transport.js';
import { Store, storeHome } from '../store/store.js';
import { action, makeContext, type CliContext } from './context.js';
import { humanSize, layerBytes, shortDigest, table } from './format.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];
const ctxOf = (flags: { json?: boolean }) => makeContext(Boolean(flags.json));
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}x` : '-');

interface BundleFlags {
  to?: string[];
  since?: string[];
  have?: string;
  output?: string;
  sign?: string;
  split?: string;
  compress?: boolean;
  delta?: boolean;
  recipes?: boolean;
  referrers?: boolean;
  dryRun?: boolean;
  release?: string;
  json?: boolean;
}

/** `--release N`: a non-negative integer. */
function parseRelease(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d{1,15}$/.test(s)) throw new BlockportError('EUSAGE', `--release ${JSON.stringify(s)}: want a whole number (that grows with every release of the tag)`);
  return Number(s);
}

async function bundleCommand(flags: BundleFlags, ctx: CliContext): Promise<MakeBundleResult> {
  const [{ makeBundle }, { parseSize }] = await Promise.all([import('../bundle/make.js'), import('../blocks/rules.js')]);
  const bar = ctx.progress('bundle');
  try {
    return await makeBundle({
      to: flags.to ?? [],
      since: flags.since,
      have: flags.have,
      out: flags.output,
      sign: flags.sign,
      split: flags.split === undefined ? undefined : parseSize(flags.split),
      compress: flags.compress !== false,
      delta: flags.delta,
      recipes: flags.recipes !== false,
      referrers: flags.referrers !== false,
      dryRun: flags.dryRun,
      release: parseRelease(flags.release),
      onProgress: (p) => bar.update(p.done, p.total, p.phase === 'compress' ? 'compressing' : p.phase === 'delta' ? 'computing deltas' : p.phase === 'recipe' ? 'building recipes' : 'writing'),
    });
  } finally {
    bar.stop();
  }
}

/** The per-target table; with deltas, a WITH DELTAS column and the saving measured against it. */
function planTable(r: MakeBundleResult): string {
  const p = r.plan;
  const d = r.deltas;
  const rows = [['TARGET', 'IMAGE', 'LAYER-LEVEL UPDATE', 'THIS BUNDLE', ...(d ? ['WITH DELTAS'] : []), 'SAVING']];
  p.perTarget.forEach((t, i) => {
    const sent = d ? d.perTarget[i].bytes : t.send.bytes;
    rows.push([t.name, humanSize(t.imageBytes), `${humanSize(t.layerLevel.bytes)} (${t.layerLevel.layers} layers)`, `${humanSize(t.send.bytes)} (${t.send.blobs} blobs)`, ...(d ? [humanSize(sent)] : []), ratio(t.layerLevel.bytes, sent)]);
  });
  const sent = d ? d.bytes : p.sizes.send;
  if (p.perTarget.length > 1) rows.push(['total', humanSize(p.sizes.image), humanSize(p.sizes.layerLevel), `${humanSize(p.sizes.send)} (${p.send.length} blobs)`, ...(d ? [humanSize(sent)] : []), ratio(p.sizes.layerLevel, sent)]);
  return table(rows);
}

/** One line per blob sent as a patch (the first 20), then how many were tried. */
function printDeltas(d: NonNullable<MakeBundleResult['deltas']>, ctx: CliContext): void {
  const name = (x: { path?: string; digest: string }) => x.path ?? shortDigest(x.digest);
  ctx.say(`deltas: ${d.blobs.length} of ${d.tried} blobs with an older version travel as binary deltas`);
  const rows = d.blobs.slice(0, 20).map((b) => [`  ${name(b)}`, humanSize(b.size), '->', humanSize(b.storedSize), `from ${name(b.base)} (${b.match})`]);
  if (rows.length) ctx.say(table(rows));
  if (d.blobs.length > 20) ctx.say(`  ... ${d.blobs.length - 20} more`);
}

function printBundle(r: MakeBundleResult, ctx: CliContext): void {
  const p = r.plan;
  ctx.say(planTable(r));
  ctx.say(`\nlayer-level update: the standard layers the receiver lacks, uncompressed (as docker save writes them)`);
  if (r.deltas) printDeltas(r.deltas, ctx);
  const listed = new Set(p.prerequisites.map((x) => x.digest));
  const bases = new Map((r.deltas?.blobs ?? []).filter((b) => !listed.has(b.base.digest)).map((b) => [b.base.digest, b.base.size]));
  const plusBases = bases.size ? `, plus ${bases.size} delta bases (${humanSize([...bases.values()].reduce((n, x) => n + x, 0))})` : '';
  if (r.referrers.count) ctx.say(`referrers: ${r.referrers.count} signature(s), SBOM(s) or attestation(s) travel with the images (${r.referrers.blobs} blobs, ${humanSize(r.referrers.bytes)})`);
  ctx.say(`prerequisites: ${p.prerequisites.length} blobs (${humanSize(p.sizes.prerequisites)})${plusBases} the receiver must already hold`);
  const w = r.written;
  if (!w) {
    ctx.say(`dry run: nothing written (before compression; a bundle of everything would be ${humanSize(p.sizes.full)})`);
    return;
  }
  const patched = w.deltas.blobs ? `; ${w.deltas.blobs} as deltas: ${humanSize(w.deltas.rawBytes)} -> ${humanSize(w.deltas.storedBytes)}` : '';
  const recipes = w.recipes.blobs ? `; ${w.recipes.blobs} as recipes: ${humanSize(w.recipes.rawBytes)} -> ${humanSize(w.recipes.storedBytes)}` : '';
  ctx.say(`wrote ${w.files.join(', ')}: ${humanSize(w.bytes)} (blobs ${humanSize(w.rawBytes)} -> ${humanSize(w.storedBytes)} stored${patched}${recipes})`);
  ctx.say(`bundle ${w.digest}${w.signedBy ? `, signed by key ${w.signedBy}` : ', unsigned'}`);
}

function printApply(r: ApplyResult, ctx: CliContext): void {
  const sig = r.signature.verified ? `signature verified (${r.signature.key})` : r.signature.signed ? 'signed, not checked (no trusted key)' : 'unsigned';
  ctx.say(`${r.noop ? 'already applied' : 'applied'} ${r.files[0]}: ${sig}`);
  const checked = r.bytesChecked ? ` (${humanSize(r.bytesChecked)} hashed)` : '';
  ctx.say(`blobs: ${r.blobs.received} received (${humanSize(r.bytesWritten)}), ${r.blobs.resumed} kept from an interrupted run, ${r.blobs.present} already present${checked}`);
  if (r.blobs.healed) ctx.say(`healed: ${r.blobs.healed} corrupt blob(s) in the store replaced by the bundle's good copy`);
  if (r.downgraded.length) ctx.say(`downgraded (--allow-downgrade): ${r.downgraded.join(', ')}`);
  if (r.splices.layers) ctx.say(`layers: ${r.splices.layers} block-form layer(s) checked to splice into their diff_ids (${humanSize(r.splices.bytes)} hashed)`);
  if (r.referrers) ctx.say(`referrers: ${r.referrers} signature(s), SBOM(s) or attestation(s) listed beside the images`);
  if (r.referrers) ctx.say(`referrers: ${r.referrers} signature(s), SBOM(s) or attestation(s) listed beside the images`);
  for (const t of r.targets) ctx.say(`${t.name} -> ${shortDigest(t.digest)}${t.changed ? (t.previous ? ` (was ${shortDigest(t.previous)})` : ' (new)') : ' (unchanged)'}`);
}

function printFsck(r: FsckReport, ctx: CliContext): void {
  ctx.say(`${r.root}: ${r.blobs} blobs (${humanSize(r.bytes)}) verified, ${r.images} images checked`);
  for (const p of r.problems) ctx.say(`${p.repaired ? 'repaired' : 'problem'}: ${p.kind}: ${p.message}${p.kind === 'temp' || p.kind === 'stray' || p.kind === 'corrupt' ? ` (${p.subject})` : ''}`);
  for (const f of r.inUse) ctx.say(`in use: ${f} (a running process is writing it)`);
  if (r.recordsDropped) ctx.say(`dropped ${r.recordsDropped} record(s) of verified layers: materialize hashes every layer again, naming a corrupt blob`);
  if (r.ok) ctx.say(r.problems.length ? 'store is consistent after repair' : 'store is consistent');
}

interface ApplyFlags {
  trust?: string[];
  allowDowngrade?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

/**
 * Applies each bundle of the command line in turn (each is a bundle of its own, its volumes
 * grouped), printing each result as it completes: when one fails, those before it stay applied.
 */
async function applyCommand(files: string[], flags: ApplyFlags, ctx: CliContext): Promise<void> {
  const [{ applyBundle }, { dryRunApply }, { groupBundles }] = await Promise.all([import('../bundle/apply.js'), import('../bundle/apply-dry-run.js'), import('../bundle/volumes.js')]);
  const groups = groupBundles(files);
  const results: (ApplyResult | ApplyPlan)[] = [];
  const opts = { trust: flags.trust, allowDowngrade: flags.allowDowngrade };
  const flush = () => ctx.json && process.stdout.write(`${JSON.stringify(groups.length === 1 ? results[0] : results, null, 2)}\n`);
  try {
    for (const g of groups) {
      if (flags.dryRun) {
        const r = await dryRunApply(g, storeHome(), opts);
        results.push(r);
        if (!ctx.json) printApplyPlan(r, ctx);
        continue;
      }
      const bar = ctx.progress('apply');
      try {
        const r = await applyBundle(g, storeHome(), { ...opts, onProgress: (p) => bar.update(p.done, p.total, p.label) });
        results.push(r);
        bar.stop();
        if (!ctx.json) printApply(r, ctx);
      } finally {
        bar.stop();
      }
    }
  } finally {
    if (results.length) flush();
  }
}

function printApplyPlan(r: ApplyPlan, ctx: CliContext): void {
  const sig = r.signature.verified ? `signature verified (${r.signature.key})` : r.signature.signed ? 'signed, not checked (no trusted key)' : 'unsigned';
  ctx.say(`dry run of ${r.files[0]}${r.created ? ` (written ${r.created})` : ''}: ${sig}; nothing written`);
  ctx.say(`blobs: ${r.blobs.add} to add (${humanSize(r.blobs.addBytes)}, ${humanSize(r.blobs.storedBytes)} in the bundle), ${r.blobs.present} already present; ${r.prerequisites} prerequisite(s) present`);
  if (r.referrers) ctx.say(`referrers: ${r.referrers} signature(s), SBOM(s) or attestation(s) would be listed beside the images`);
  for (const t of r.targets) ctx.say(`${t.name} -> ${shortDigest(t.digest)}${t.changed ? (t.previous ? ` (now ${shortDigest(t.previous)})` : ' (new)') : ' (unchanged)'}${r.downgraded.includes(t.name) ? ' DOWNGRADE' : ''}`);
}

/** Prints a report, then fails with `code` when it holds problems (so scripts see a non-zero exit). */
async function report<R>(r: R, ctx: CliContext, print: (r: R, ctx: CliContext) => void, failure?: BlockportError): Promise<void> {
  if (ctx.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else print(r, ctx);
  if (failure) throw failure;
}

async function loadCommand(ref: string, flags: { tool?: string; tag?: string[]; verify?: boolean }, ctx: CliContext) {
  const { loadInto, pickTool } = await import('../bundle/load.js');
  const tool = await pickTool(flags.tool);
  const r = parseRef(ref);
  const own = transportOf(r).nameOf?.(r);
  const tags = flags.tag?.length ? flags.tag.map((t) => checkNameTag(t, '--tag')) : own ? [own] : [];
  const src = await openImage(r, ref);
  const bar = ctx.progress('load');
  const total = layerBytes(src.manifest);
  try {
    // the runtime checks every diff_id as it loads; layers the store verified are not hashed here too
    const res = await loadInto(tool, src, tags, { verify: flags.verify, onProgress: (p) => bar.update(p.bytes, Math.max(total, p.bytes), `layer ${p.layer + 1}/${p.layers}`) });
    return { source: ref, tags, ...res };
  } finally {
    bar.stop();
    await src.close();
  }
}

/** Registers the update-bundle commands (bundle, apply, inventory, keygen, load, fsck). */
export function registerBundleCommands(program: Command): void {
  program
    .command('bundle')
    .description('write an offline update bundle holding only the blobs the receiver lacks')
    .option('--to <ref...>', 'image(s) the receiver should get: store NAME:TAG, a transport reference, or NAME:TAG=REF')
    .option('--since <ref...>', 'image(s) the receiver already holds (store NAME:TAG or any reference)')
    .option('--have <file>', "what the receiver holds, from 'blockport inventory' run there")
    .option('-o, --output <file>', 'bundle file to write (volumes FILE.001, ... with --split)')
    .option('--sign <key>', "Ed25519 private key (from 'blockport keygen') to sign the bundle with")
    .option('--split <size>', 'split into volumes of at most SIZE bytes (e.g. 4G for FAT32)')
    .option('--no-compress', 'store blobs as they are (default: zstd when it makes a blob smaller)')
    .option('--delta', 'send a changed block or layer as a binary delta (zstd, or xdelta3 for big ones) against its older version in the --since images, when smaller; a changed jar (any zip) as a zip delta of its entries when that is smaller still')
    .option('--no-recipes', 'send changed layers and folder blocks whole (default: as recipes that copy the unchanged files from the --since images, when smaller)')
    .option('--with-referrers', "carry the images' signatures, SBOMs and attestations (OCI 1.1 referrers and cosign's sha256-<hex>.sig/.att/.sbom tags) with them (the default)")
    .option('--no-referrers', 'leave signatures, SBOMs and attestations out')
    .option('--release <n>', 'release number of the targets; receivers refuse an older one than they applied (default: the time, in ms since 1970)')
    .option('--dry-run', 'print the plan (image size, layer-level update, this bundle) and write nothing')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport bundle --to app:2 --since app:1 -o app-2.bpk --sign vendor.key
  blockport bundle --to app:2 --since app:1 --delta -o app-2.bpk    # bumped jars as binary deltas
  blockport bundle --to app:2 --have customer-inventory.json -o app-2.bpk
  blockport bundle --to app:2 --to worker:7 --since app:1 --since worker:6 -o release.bpk --split 4G
  blockport bundle --to app:2=oci:./build:2 --since app:1 --dry-run --json`)
    .action(action((flags: BundleFlags) => bundleCommand(flags, ctxOf(flags)), printBundle));

  program
    .command('apply')
    .description('apply update bundles to the local store: verify everything, then tag the images')
    .argument('<files...>', 'bundle files, applied one after the other; FILE.001 (alone, or followed by FILE.002 ...) is one bundle in volumes')
    .option('--trust <pubkey>', 'require a signature by this public key; repeatable (default: $BLOCKPORT_HOME/trust/*.pub when present)', collect)
    .option('--allow-downgrade', 'apply a release of a tag older than the one applied before (refused by default: rollback protection)')
    .option('--dry-run', 'show what the bundle would do (tags, blobs added, bytes) and write nothing')
    .option('--json', 'print the result as JSON (an array when several bundles are given)')
    .addHelpText('after', `
Examples:
  blockport apply app-2.bpk --trust vendor.pub
  blockport apply release.bpk.001            # finds release.bpk.002, ...
  blockport apply app-2.bpk worker-7.bpk     # two bundles, one after the other
  blockport apply app-2.bpk --dry-run
  cp vendor.pub ~/.local/share/blockport/trust/ && blockport apply app-3.bpk`)
    .action((files: string[], flags: ApplyFlags) => applyCommand(files, flags, ctxOf(flags)));

  program
    .command('inventory')
    .description("list what the local store holds, for the sender's 'bundle --have'")
    .option('-o, --output <file>', 'write the inventory here (default: print it)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport inventory -o customer-inventory.json
  blockport inventory | jq '.images'`)
    .action(action(async (flags: { output?: string; json?: boolean }) => {
      const { inventory, writeInventory } = await import('../bundle/inventory.js');
      const inv = await inventory(Store.open().layout);
      if (flags.output) await writeInventory(flags.output, inv);
      return { file: flags.output, ...inv };
    }, (r: Inventory & { file?: string }, ctx) => {
      if (!r.file) process.stdout.write(`${JSON.stringify({ version: r.version, blobs: r.blobs, images: r.images, diffIds: r.diffIds }, null, 2)}\n`);
      else ctx.say(`wrote ${r.file}: ${r.blobs.length} blobs, ${r.images.length} images`);
    }));

  program
    .command('keygen')
    .description('make an Ed25519 key pair for signing bundles: NAME.key (keep it secret) and NAME.pub')
    .requiredOption('-o, --output <name>', 'file name prefix')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport keygen -o vendor          # vendor.key, vendor.pub; ship vendor.pub to receivers`)
    .action(action(async (flags: { output: string }) => (await import('../bundle/sign.js')).keygen(flags.output), (r, ctx) => {
      ctx.say(`wrote ${r.privateKey} (private, mode 0600) and ${r.publicKey}`);
      ctx.say(`key id ${r.keyId}`);
    }));

  program
    .command('load')
    .description('materialize an image straight into docker load or podman load')
    .argument('<ref>', 'store NAME:TAG or any image reference')
    .option('--tool <tool>', 'docker or podman (default: docker when its daemon answers, else podman)')
    .option('--tag <name>', 'NAME:TAG to load the image as; repeatable (default: the store name)', collect)
    .option('--verify', 'hash every layer against its diff_id, even those the store has verified before')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport load app:2
  blockport load app:2 --tool podman --tag registry.example.com/app:2`)
    .action(action((ref: string, flags: { tool?: string; tag?: string[]; verify?: boolean; json?: boolean }) => loadCommand(ref, flags, ctxOf(flags)), (r, ctx) => {
      ctx.say(`${r.tool} load: ${r.loaded.join(', ') || 'done'} (config ${r.configDigest})`);
    }));

  program
    .command('fsck')
    .description('check the store: blob digests, images complete, no leftovers of interrupted writes')
    .option('--repair', 'delete leftover temporary files and staging folders; move corrupt blobs to quarantine/ so the next apply or pull brings them again')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport fsck
  blockport fsck --repair --json`)
    .action(async (flags: { repair?: boolean; json?: boolean }) => {
      const ctx = ctxOf(flags);
      const bar = ctx.progress('fsck');
      let r: FsckReport;
      try {
        r = await Store.open().fsck({ repair: flags.repair, onProgress: (d, t) => bar.update(d, t) });
      } finally {
        bar.stop();
      }
      const left = r.problems.filter((p) => !p.repaired);
      const code = left.some((p) => p.kind === 'corrupt') ? 'EDIGEST' : left.some((p) => p.kind === 'missing') ? 'EMISSING' : 'ECORRUPT';
      await report(r, ctx, printFsck, r.ok ? undefined : new BlockportError(code, `fsck: ${left.length} problem(s) in ${r.root}`));
    });
}
