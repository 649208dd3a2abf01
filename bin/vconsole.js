#!/usr/bin/env node
// See bin/vcam.js for VCAM_FROM_SOURCE.
const fromSource = process.env.VCAM_FROM_SOURCE === '1';
if (fromSource) (await import('tsx/esm/api')).register();
const cli = await import(fromSource ? '../console/cli.ts' : '../dist/console/cli.js');
await cli.run();
