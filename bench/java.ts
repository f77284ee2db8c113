// The `java` scenario (an app on Debian + JRE with 100+ dependency jars, three releases), the
// `teams` scenario (a second team's image on the same base sharing most of those jars) and
// `java-xl` (java v3 with a build toolchain installed on top: about 1.1 GB of layers).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { BuildContext } from './context.js';
import { BASE_PACKAGES, baseLayer, debLayer, linkJava, type DebLayer } from './debian-layers.js';
import type { ImageSpec, RunConfig } from './image.js';
import { appLayer, type JavaApp } from './java-app.js';
import { depsLayer, type DebJars, type DepsRecipe } from './jars.js';
import { mapLimit, run } from './exec.js';

/** An image to build plus what changed against the release before it. */
export interface PlannedImage extends ImageSpec {
  scenario: string;
  version: string;
  changes: string[];
}

const JRE = 'openjdk-17-jre-headless';
const JVM = 'java-17-openjdk-amd64';
const OPT_V1 = ['curl', 'git', 'procps', 'less', 'unzip'];
// v3 drops unzip and adds jq (with its libraries).
const OPT_V3 = ['curl', 'git', 'procps', 'less', 'jq'];
const CLOSURE = 'google-closure-compiler-java';
const CLOSURE_VERSIONS = { v1: '20230802.0.0', v3: '20231112.0.0', teams: '20240317.0.0' };
// Packages the mirror carries in two versions (stable and security update): real version bumps.
const BUMPED_V3 = ['libzookeeper-java', 'libtomcat10-java', 'libasync-http-client-java'];
const BUMPED_V2 = { pkg: 'libzookeeper-java', jar: 'zookeeper-jute.jar' };
// What a CI build image adds to java v3: JDK, Java build tools, Python, C/C++ compilers, CMake
// (about 180 packages, 580 MB unpacked: the image reaches about 1.1 GB of layers).
const TOOLCHAIN = ['openjdk-17-jdk-headless', 'maven', 'gradle', 'ant', 'python3', 'python3-pip', 'gcc', 'g++', 'make', 'cmake'];

/** A typical service's dependency set, as Debian packages them. */
export const JAVA_LIBS = [
  'libcommons-cli-java', 'libcommons-codec-java', 'libcommons-collections3-java', 'libcommons-collections4-java',
  'libcommons-compress-java', 'libcommons-io-java', 'libcommons-lang-java', 'libcommons-lang3-java',
  'libcommons-logging-java', 'libcommons-net-java', 'libcommons-text-java', 'libcommons-math3-java',
  'libcommons-pool2-java', 'libcommons-dbcp2-java', 'libcommons-csv-java', 'libcommons-beanutils-java',
  'libcommons-configuration2-java', 'libcommons-validator-java', 'libcommons-fileupload-java', 'libcommons-exec-java',
  'libcommons-email-java', 'libcommons-jexl3-java', 'libcommons-digester-java',
  'libjackson2-annotations-java', 'libjackson2-core-java', 'libjackson2-databind-java', 'libjackson2-dataformat-xml-java',
  'libjackson2-dataformat-yaml', 'libjackson2-datatype-joda-java', 'libjackson2-jr-java',
  'libjackson2-module-jaxb-annotations-java', 'libjackson2-jaxrs-providers-java',
  'libguava-java', 'libgoogle-gson-java', 'libyaml-snake-java', 'libslf4j-java', 'liblogback-java', 'liblog4j2-java',
  'libnetty-java', 'libjetty9-java', 'libasync-http-client-java', 'libhttpclient-java', 'libhttpcore-java',
  'libhttpasyncclient-java', 'libhttpclient5-java', 'libhttpcore5-java', 'libokhttp-java', 'libokio-java',
  'libspring-core-java', 'libspring-beans-java', 'libspring-context-java', 'libspring-aop-java',
  'libspring-expression-java', 'libspring-jdbc-java', 'libspring-transaction-java', 'libspring-web-java',
  'libhibernate-validator-java', 'libjakarta-servlet-api-java', 'libjakarta-validation-api-java',
  'libjakarta-annotation-api-java', 'libjakarta-activation-java', 'libjakarta-mail-java', 'libjaxb-api-java', 'libjaxb-java',
  'libasm-java', 'libbyte-buddy-java', 'libjavassist-java', 'libcglib-java', 'libobjenesis-java',
  'libjoda-time-java', 'libcaffeine-java', 'libehcache-java', 'libhikaricp-java', 'libpostgresql-jdbc-java', 'libh2-java',
  'libquartz2-java', 'libjsoup-java', 'libxstream-java', 'libwoodstox-java', 'libstax2-api-java', 'libxerces2-java',
  'libdom4j-java', 'libjdom2-java', 'libbcprov-java', 'libbcpkix-java', 'libjsch-java', 'libjna-java', 'libjline3-java',
  'libjcommander-java', 'libfreemarker-java', 'libantlr4-runtime-java', 'libjsr305-java', 'libzookeeper-java',
  'libtomcat10-java', 'libaopalliance-java', 'libatinject-jsr330-api-java', 'libguice-java', 'libprotobuf-java',
  'libdropwizard-metrics-java',
];

/** What the second team uses that the first does not. */
const TEAMS_EXTRA = [
  'libmariadb-java', 'libactivemq-java', 'libmina2-java', 'libjgit-java', 'libjavaewah-java', 'libpicocli-java',
  'libargs4j-java', 'libxz-java', 'libsnappy-java', 'liblz4-java', 'libzstd-jni-java', 'libcompress-lzf-java',
  'libpdfbox2-java', 'libfontbox2-java', 'libjson-smart-java', 'libkryo-java', 'libminlog-java',
  'libspring-web-servlet-java', 'libspring-orm-java', 'libjersey1-core-java', 'libjersey1-server-java',
];

/** Which images of {@link planJava} to build. */
export interface JavaWanted {
  /** java-v1, java-v2, java-v3. */
  java: boolean;
  teams: boolean;
  /** java-xl (its lower layers are java-v3's, built too but not tagged unless `java`). */
  xl: boolean;
}

/** The java, teams and/or java-xl images, in build order. */
export async function planJava(ctx: BuildContext, want: JavaWanted): Promise<PlannedImage[]> {
  const dir = join(ctx.out, 'java', 'layers');
  await fsp.mkdir(dir, { recursive: true });
  const jreVersions = await ctx.apt.versions(JRE);
  if (jreVersions.length === 0) throw new Error(`${JRE} is not on the configured apt mirror`);
  const jre = { v1: `${JRE}=${jreVersions[jreVersions.length - 1]}`, v3: `${JRE}=${jreVersions[0]}` };
  // Resolve up front, two apt runs at a time, and every package's versions in one apt-cache run.
  await ctx.apt.versionsOf([...JAVA_LIBS, ...TEAMS_EXTRA]);
  const v3 = want.java || want.xl;
  const sets = [[], OPT_V1, [...OPT_V1, jre.v1], ...(v3 ? [OPT_V3, [...OPT_V3, jre.v3]] : []), ...(want.xl ? [[...OPT_V3, jre.v3, ...TOOLCHAIN]] : [])];
  await mapLimit(sets, 2, (s) => ctx.apt.closure([...BASE_PACKAGES, ...s]));
  const base = await baseLayer(ctx);
  const opt1 = await debLayer(ctx, dir, 'opt-v1', { below: BASE_PACKAGES, wanted: OPT_V1, describe: `apt-get install ${OPT_V1.join(' ')}` });
  const jre1 = await debLayer(ctx, dir, 'jre-v1', { below: [...BASE_PACKAGES, ...OPT_V1], wanted: [jre.v1], describe: `apt-get install ${jre.v1}`, after: { key: 'java-link', apply: linkJava(JVM) } });
  const lower = [base.layer, opt1.layer, jre1.layer];
  const out: PlannedImage[] = [];
  if (want.java) out.push(...(await planOrdersV1V2(ctx, dir, lower)));
  if (v3) {
    const orders3 = await planOrdersV3(ctx, dir, base, opt1, jre);
    if (want.java) out.push(orders3);
    if (want.xl) out.push(await planJavaXl(ctx, dir, orders3, jre.v3));
  }
  if (want.teams) out.push(await planTeams(ctx, lower));
  return out;
}

async function planOrdersV1V2(ctx: BuildContext, dir: string, lower: ImageSpec['layers']): Promise<PlannedImage[]> {
  const deps1 = await depsLayer(ctx, dir, 'deps-v1', javaDeps({}, CLOSURE_VERSIONS.v1));
  const v2 = javaDeps({ split: BUMPED_V2 }, CLOSURE_VERSIONS.v1);
  const deps2 = await depsLayer(ctx, dir, 'deps-v2', v2);
  const from = deps1.resolved.find((r) => r.source === BUMPED_V2.pkg)?.version;
  const to = deps2.resolved.find((_, i) => v2.debs[i].only !== undefined);
  return [
    javaImage('java', 'v1', [...lower, deps1.layer, await appLayer(dir, 'app-v1', ORDERS_V1)], ORDERS_V1, ['first release']),
    javaImage('java', 'v2', [...lower, deps2.layer, await appLayer(dir, 'app-v2', ORDERS_V2)], ORDERS_V2, [
      `${BUMPED_V2.jar} from ${BUMPED_V2.pkg} ${from} -> ${to?.version}${to?.rebuilt ? ' (rebuilt with jar --update: one version on the mirror)' : ''}`,
      `app ${ORDERS_V1.version} -> ${ORDERS_V2.version} (version string, config)`,
    ]),
  ];
}

async function planOrdersV3(ctx: BuildContext, dir: string, base: DebLayer, opt1: DebLayer, jre: { v1: string; v3: string }): Promise<PlannedImage> {
  const opt3 = await debLayer(ctx, dir, 'opt-v3', { below: BASE_PACKAGES, wanted: OPT_V3, describe: `apt-get install ${OPT_V3.join(' ')}` });
  const sameJre = jre.v1 === jre.v3;
  const jre3 = await debLayer(ctx, dir, 'jre-v3', {
    below: [...BASE_PACKAGES, ...OPT_V3], wanted: [jre.v3], describe: `apt-get install ${jre.v3}`,
    after: { key: sameJre ? 'java-link-nocds' : 'java-link', apply: sameJre ? dropCds(linkJava(JVM)) : linkJava(JVM) },
  });
  const deps3 = await depsLayer(ctx, dir, 'deps-v3', javaDeps({ newest: BUMPED_V3 }, CLOSURE_VERSIONS.v3));
  const app3 = await appLayer(dir, 'app-v3', ORDERS_V3);
  return javaImage('java', 'v3', [base.layer, opt3.layer, jre3.layer, deps3.layer, app3], ORDERS_V3, [
    `opt packages: ${OPT_V1.join(' ')} -> ${OPT_V3.join(' ')} (${opt3.debs.length} packages instead of ${opt1.debs.length})`,
    sameJre ? `JRE ${jre.v1}: same package, CDS archive removed (one version on the mirror)` : `JRE ${jre.v1} -> ${jre.v3}`,
    `jars: ${BUMPED_V3.join(', ')} at their newer Debian versions; ${CLOSURE} ${CLOSURE_VERSIONS.v1} -> ${CLOSURE_VERSIONS.v3}`,
    `app ${ORDERS_V2.version} -> ${ORDERS_V3.version} (one more class, config)`,
  ]);
}

/** java v3 plus one layer: what `apt-get install` of a build toolchain adds on top of it. */
async function planJavaXl(ctx: BuildContext, dir: string, v3: PlannedImage, jre3: string): Promise<PlannedImage> {
  const tools = await debLayer(ctx, dir, 'toolchain', {
    below: [...BASE_PACKAGES, ...OPT_V3, jre3], wanted: TOOLCHAIN, describe: `apt-get install ${TOOLCHAIN.join(' ')}`,
  });
  return {
    ...v3, tag: 'java-xl', version: 'xl', layers: [...v3.layers, tools.layer],
    changes: [`java v3 plus a toolchain layer: apt-get install ${TOOLCHAIN.join(' ')} (${tools.debs.length} packages)`],
  };
}

async function planTeams(ctx: BuildContext, lower: ImageSpec['layers']): Promise<PlannedImage> {
  const dir = join(ctx.out, 'teams', 'layers');
  await fsp.mkdir(dir, { recursive: true });
  // Two packages in ten of the first team's set are dropped: roughly 70% stay shared. The
  // second team runs newer builds of two of the packages it keeps.
  const newer = ['libzookeeper-java', 'libtomcat10-java'];
  const kept = JAVA_LIBS.filter((p, i) => newer.includes(p) || (i % 10 !== 2 && i % 10 !== 7));
  const recipe: DepsRecipe = {
    libDir: 'app/lib',
    debs: [...kept, ...TEAMS_EXTRA].map((pkg) => ({ pkg, pick: newer.includes(pkg) ? 'newest' : 'oldest' })),
    npm: [closureJar(CLOSURE_VERSIONS.teams)],
  };
  const deps = await depsLayer(ctx, dir, 'deps-v1', recipe);
  const app = await appLayer(dir, 'app-v1', BILLING_V1);
  return javaImage('teams', 'v1', [...lower, deps.layer, app], BILLING_V1, [
    `same base, opt and JRE layers as java v1; ${kept.length} of java's ${JAVA_LIBS.length} jar packages plus ${TEAMS_EXTRA.length} others`,
    `libzookeeper-java and libtomcat10-java at their newer versions; ${CLOSURE} ${CLOSURE_VERSIONS.teams}`,
  ]);
}

function javaDeps(o: { newest?: string[]; split?: { pkg: string; jar: string } }, closure: string): DepsRecipe {
  const debs: DebJars[] = [];
  for (const pkg of JAVA_LIBS) {
    if (o.split?.pkg === pkg) {
      debs.push({ pkg, pick: 'oldest', except: [o.split.jar] }, { pkg, pick: 'newest', only: [o.split.jar] });
    } else debs.push({ pkg, pick: o.newest?.includes(pkg) ? 'newest' : 'oldest' });
  }
  return { libDir: 'app/lib', debs, npm: [closureJar(closure)] };
}

function closureJar(version: string) {
  return { pkg: CLOSURE, version, member: 'package/compiler.jar', as: `closure-compiler-v${version.split('.')[0]}.jar` };
}

function javaImage(scenario: string, version: string, layers: ImageSpec['layers'], app: JavaApp, changes: string[]): PlannedImage {
  const config: RunConfig = {
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `JAVA_HOME=/usr/lib/jvm/${JVM}`, 'LANG=C.UTF-8'],
    cmd: ['java', '-cp', '/app/app.jar:/app/lib/*', `${app.pkg}.Main`],
    workingDir: '/app',
    labels: { 'org.opencontainers.image.title': app.name, 'org.opencontainers.image.version': app.version },
  };
  return { tag: `${scenario}-${version}`, scenario, version, layers, config, changes };
}

/** Stands in for a changed JRE build when the mirror has one version: drops the CDS archives. */
function dropCds(then: (stage: string) => Promise<void>): (stage: string) => Promise<void> {
  return async (stage) => {
    await then(stage);
    await run('find', [join(stage, 'usr/lib/jvm'), '-name', 'classes*.jsa', '-delete']);
  };
}

const ORDERS_V1: JavaApp = {
  name: 'orders', pkg: 'com.example.orders', version: '1.0.0',
  services: ['OrderService', 'PricingService', 'InventoryService'],
  uses: [
    'com.fasterxml.jackson.databind.ObjectMapper', 'org.apache.commons.lang3.StringUtils', 'io.netty.buffer.ByteBuf',
    'org.apache.jute.Record', 'org.apache.catalina.startup.Tomcat', 'com.google.javascript.jscomp.Compiler',
  ],
  config: { 'server.port': '8080', 'order.limit': '50', 'pricing.buckets': '97', 'greeting': 'hello' },
};
const ORDERS_V2: JavaApp = { ...ORDERS_V1, version: '1.1.0', config: { ...ORDERS_V1.config, 'order.limit': '80' } };
const ORDERS_V3: JavaApp = {
  ...ORDERS_V2, version: '2.0.0',
  services: [...ORDERS_V2.services, 'ShippingService'],
  config: { ...ORDERS_V2.config, 'shipping.limit': '5' },
};
const BILLING_V1: JavaApp = {
  name: 'billing', pkg: 'com.example.billing', version: '3.4.1',
  services: ['InvoiceService', 'LedgerService'],
  uses: ['org.apache.commons.codec.binary.Hex', 'org.apache.mina.core.session.IoSession', 'org.mariadb.jdbc.Driver', 'org.apache.jute.Record', 'com.google.javascript.jscomp.Compiler'],
  config: { 'server.port': '8081', 'invoice.limit': '500', 'ledger.buckets': '31' },
};
