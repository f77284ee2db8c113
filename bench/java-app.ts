// The small app on top of a Java image: a jar compiled here with the JDK's javac and jar, and its
// config files. Versions differ the way an app release does: a version string, config, a class.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';
import { buildLayer, EPOCH_ISO, type BuiltLayer } from './layer.js';

/** One release of the app. */
export interface JavaApp {
  /** Short name, e.g. orders. */
  name: string;
  /** Java package, e.g. com.example.orders. */
  pkg: string;
  version: string;
  /** One generated service class each. */
  services: string[];
  /** Library classes the app loads at start (and prints the jar each came from). */
  uses: string[];
  /** Lines of config/application.properties. */
  config: Record<string, string>;
}

/** The app layer `name` in `dir`: /app/app.jar and /app/config/. */
export async function appLayer(dir: string, name: string, app: JavaApp): Promise<BuiltLayer> {
  return buildLayer(dir, name, app, async (stage) => {
    const appDir = join(stage, 'app');
    await fsp.mkdir(join(appDir, 'config'), { recursive: true });
    const work = await fsp.mkdtemp(join(dir, `.javac-${name}-`));
    try {
      await compileJar(work, app, join(appDir, 'app.jar'));
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
    const props = Object.entries(app.config).map(([k, v]) => `${k}=${v}\n`).join('');
    await fsp.writeFile(join(appDir, 'config', 'application.properties'), props);
    await fsp.writeFile(join(appDir, 'config', 'logging.properties'), `handlers=java.util.logging.ConsoleHandler\n.level=INFO\n${app.pkg}.level=FINE\n`);
    return `${app.name} ${app.version}: app.jar and config`;
  });
}

async function compileJar(work: string, app: JavaApp, jar: string): Promise<void> {
  const src = join(work, 'src', ...app.pkg.split('.'));
  const classes = join(work, 'classes');
  await fsp.mkdir(src, { recursive: true });
  await fsp.mkdir(classes, { recursive: true });
  const files = [join(src, 'Main.java')];
  await fsp.writeFile(files[0], mainSource(app));
  for (const s of app.services) {
    files.push(join(src, `${s}.java`));
    await fsp.writeFile(files[files.length - 1], serviceSource(app, s));
  }
  await run('javac', ['--release', '17', '-encoding', 'UTF-8', '-d', classes, ...files]);
  // --date makes the entries' timestamps (and so the jar) the same on every build.
  await run('jar', ['--create', `--date=${EPOCH_ISO}`, '--file', jar, '--main-class', `${app.pkg}.Main`, '-C', classes, '.']);
}

function mainSource(app: JavaApp): string {
  const calls = app.services.map((s) => `    System.out.println(new ${s}(config).describe());`).join('\n');
  const uses = app.uses.map((c) => `"${c}"`).join(', ');
  return `package ${app.pkg};

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/** Entry point of ${app.name}. */
public final class Main {
  static final String VERSION = "${app.version}";

  private Main() {}

  public static void main(String[] args) throws IOException {
    Properties config = new Properties();
    try (InputStream in = new FileInputStream("/app/config/application.properties")) {
      config.load(in);
    }
    System.out.println("${app.name} " + VERSION + " on Java " + Runtime.version());
${calls}
    for (String name : new String[] {${uses}}) {
      System.out.println("uses " + name + " from " + jarOf(name));
    }
  }

  private static String jarOf(String className) {
    try {
      Class<?> c = Class.forName(className, false, Main.class.getClassLoader());
      String where = c.getProtectionDomain().getCodeSource().getLocation().getPath();
      return where.substring(where.lastIndexOf('/') + 1);
    } catch (ClassNotFoundException | LinkageError e) {
      return "nowhere (" + e + ")";
    }
  }
}
`;
}

function serviceSource(app: JavaApp, name: string): string {
  const key = name.replace(/Service$/, '').toLowerCase();
  return `package ${app.pkg};

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/** The ${key} part of ${app.name} ${app.version}. */
final class ${name} {
  private final Properties config;
  private final List<String> history = new ArrayList<>();

  ${name}(Properties config) {
    this.config = config;
  }

  String describe() {
    history.add("describe");
    String limit = config.getProperty("${key}.limit", "10");
    return "${name} (limit " + limit + ", version " + Main.VERSION + ", calls " + history.size() + ")";
  }

  int score(String input) {
    int h = 7;
    for (char c : input.toCharArray()) h = h * 31 + c;
    return Math.floorMod(h, Integer.parseInt(config.getProperty("${key}.buckets", "97")));
  }
}
`;
}
