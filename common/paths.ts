/** Files that ship beside the code (bin/, C sources) are found from the package root, from src or dist alike. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the vcam package root (package.json)');
    dir = up;
  }
  return dir;
})();

export const VCAM_BIN = join(PACKAGE_ROOT, 'bin', 'vcam.js');
