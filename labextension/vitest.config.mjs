// Unit tests of the sidebar's API client and models: node environment, TypeScript through
// vite; @jupyterlab/* and @lumino/* ship ES modules, so vitest transforms them too.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    server: { deps: { inline: [/@jupyterlab\//, /@lumino\//] } }
  }
});
