import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import type { BuildConfig } from './config.js';

/** The architecture names OCI uses for this machine's. */
export function hostPlatform(): Platform {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: 'linux', architecture: arch };
}

/** "OS/ARCH[/VARIANT]". */
export function parsePlatform(s: string): Platform {
  const m = /^([a-z0-9]+)\/([a-z0-9_]+)(?:\/([a-z0-9]+))?$/.exec(s);
  if (!m) throw new BlockportError('EUSAGE', `--platform ${JSON.stringify(s)} must be OS/ARCH[/VARIANT] (e.g. linux/amd64, linux/arm64/v8)`);
  return { os: m[1], architecture: m[2], ...(m[3] ? { variant: m[3] } : {}) };
}

/** SOURCE_DATE_EPOCH as seconds (0 when unset), refusing anything but a whole number. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv): number {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return 0;
  if (!/^\d{1,12}$/.test(v)) throw new BlockportError('EUSAGE', `SOURCE_DATE_EPOCH=${JSON.stringify(v)} must be whole seconds since 1970`);
  return Number(v);
}

/** RFC 3339 without fractions, as Docker writes `created`. */
export function rfc3339(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

function port(p: string | number): string {
  const s = String(p);
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(s);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) throw new BlockportError('EUSAGE', `--expose ${JSON.stringify(s)} must be PORT[/tcp|udp|sctp] with PORT 1-65535`);
  return `${Number(m[1])}/${m[2] ?? 'tcp'}`;
}

function command(c: string | string[]): string[] {
  return typeof c === 'string' ? [c] : c;
}

type RunConfig = Record<string, unknown> & { Env?: string[]; Labels?: Record<string, string>; ExposedPorts?: Record<string, object> };

/** The base's runtime settings with the build's on top, Docker's way (a new entrypoint clears the base's cmd). */
function runConfig(base: RunConfig | undefined, c: BuildConfig): RunConfig {
  const out: RunConfig = { ...(base ?? {}) };
  if (c.env && Object.keys(c.env).length) {
    const env = [...(out.Env ?? [])];
    for (const [k, v] of Object.entries(c.env)) {
      const i = env.findIndex((e) => e.split('=')[0] === k);
      if (i === -1) env.push(`${k}=${v}`);
      else env[i] = `${k}=${v}`;
    }
    out.Env = env;
  }
  if (c.entrypoint !== undefined) {
    out.Entrypoint = command(c.entrypoint);
    if (c.cmd === undefined) delete out.Cmd;
  }
  if (c.cmd !== undefined) out.Cmd = command(c.cmd);
  if (c.workdir !== undefined) {
    if (!c.workdir.startsWith('/')) throw new BlockportError('EUSAGE', `--workdir ${JSON.stringify(c.workdir)} must be an absolute path`);
    out.WorkingDir = c.workdir;
  }
  if (c.user !== undefined) out.User = c.user;
  if (c.labels && Object.keys(c.labels).length) out.Labels = { ...(out.Labels ?? {}), ...c.labels };
  if (c.expose?.length) {
    const ports: Record<string, object> = { ...(out.ExposedPorts ?? {}) };
    for (const p of c.expose) ports[port(p)] = {};
    out.ExposedPorts = Object.fromEntries(Object.entries(ports).sort(([a], [b]) => (a < b ? -1 : 1)));
  }
  return out;
}

/**
 * The new image's config: the base's (kept field for field), then `created`, the platform, the
 * runtime settings, the new diff_ids and one history entry per layer, all from inputs only, so
 * two machines building the same inputs write the same bytes.
 */
export function imageConfig(
  base: ImageConfig | undefined,
  c: BuildConfig,
  parts: { platform: Platform; created: number; layers: Array<{ diffId: Digest; createdBy: string; comment?: string }> },
): ImageConfig {
  const created = rfc3339(parts.created);
  const history = [...((base?.history as unknown[] | undefined) ?? [])];
  for (const l of parts.layers) history.push({ created, created_by: l.createdBy, ...(l.comment ? { comment: l.comment } : {}) });
  const { variant: _v, 'os.version': _osv, ...baseRest } = (base ?? {}) as ImageConfig & { 'os.version'?: string };
  const keepOsVersion = base && base.os === parts.platform.os && base.architecture === parts.platform.architecture ? (base as Record<string, unknown>)['os.version'] : undefined;
  return {
    ...baseRest,
    created,
    architecture: parts.platform.architecture,
    os: parts.platform.os,
    ...(keepOsVersion ? { 'os.version': keepOsVersion } : {}),
    ...(parts.platform.variant ? { variant: parts.platform.variant } : {}),
    config: runConfig(base?.config as RunConfig | undefined, c),
    rootfs: { type: 'layers', diff_ids: [...(base?.rootfs.diff_ids ?? []), ...parts.layers.map((l) => l.diffId)] },
    history,
  };
}
