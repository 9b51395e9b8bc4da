import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// The built files are committed (ui/dist) and embedded in the server binary; file names
// carry content hashes, so a fresh build of the same sources gives the same files.
export default defineConfig({
  plugins: [preact()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:7600' },
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
});
