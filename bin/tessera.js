#!/usr/bin/env node
// Entry point for the `tessera` command. The sources are TypeScript; tsx compiles each module
// once as it is loaded, so there is no separate build step between a clone and a running server.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
