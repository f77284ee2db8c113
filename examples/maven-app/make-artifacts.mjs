// Stands in for `mvn package` + `dependency:copy-dependencies`: writes target/lib/*.jar (the
// dependencies) and target/app.jar for version 1 or 2 of the service. Version 2 bumps one
// dependency and changes the application, as a typical release does.
import { join } from 'node:path';
import { classBytes, fresh, writeJar } from '../lib/files.mjs';

const version = Number(process.argv[2] ?? 1);
const here = new URL('.', import.meta.url).pathname;
const deps = [
  ['jackson-core', '2.17.1', 180_000],
  ['jackson-databind', version === 1 ? '2.17.1' : '2.17.2', 320_000],
  ['jackson-annotations', '2.17.1', 80_000],
  ['slf4j-api', '2.0.13', 60_000],
  ['logback-classic', '1.5.6', 280_000],
  ['logback-core', '1.5.6', 240_000],
  ['commons-lang3', '3.14.0', 260_000],
  ['guava', '33.2.1-jre', 400_000],
  ['snakeyaml', '2.2', 150_000],
];
const target = join(here, 'target');
fresh(target);
for (const [name, v, size] of deps) {
  writeJar(join(target, 'lib', `${name}-${v}.jar`), {
    'META-INF/MANIFEST.MF': `Manifest-Version: 1.0\nImplementation-Title: ${name}\nImplementation-Version: ${v}\n`,
    [`org/example/${name.replace(/-/g, '/')}/Classes.class`]: classBytes(`${name}-${v}`, size),
  });
}
writeJar(join(target, 'app.jar'), {
  'META-INF/MANIFEST.MF': `Manifest-Version: 1.0\nMain-Class: com.example.Main\nImplementation-Version: ${version}.0.0\n`,
  'com/example/Main.class': classBytes(`app-${version}`, 40_000),
});
console.log(`target/ for version ${version}: ${deps.length} dependency jars + app.jar`);
