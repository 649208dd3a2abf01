#!/usr/bin/env node
// Runs the compiled CLI (dist/, built by `npm run build`, which `npm ci` runs). With
// VCAM_FROM_SOURCE=1 it runs the TypeScript sources through tsx instead (development, tests).
const fromSource = process.env.VCAM_FROM_SOURCE === '1';
if (fromSource) (await import('tsx/esm/api')).register();
const cli = await import(fromSource ? '../cli/vcam.ts' : '../dist/cli/vcam.js');
await cli.run();
