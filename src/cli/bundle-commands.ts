import type { Command } from 'commander';

/** Registers the update-bundle commands (bundle, apply, inventory, keygen, load, fsck). */
export function registerBundleCommands(program: Command): void {
  void program;
}
