// Vite configuration of the dashboard. `npm run build` writes the bundle to dist/ (CMake passes
// --outDir to put it in the build tree instead); `npm run dev` serves it with hot reload and proxies
// the API to a running gateway (RMA_GATEWAY, default http://127.0.0.1:8080).
import { defineConfig } from 'vite';

const gateway = process.env.RMA_GATEWAY || 'http://127.0.0.1:8080';

export default defineConfig({
  // JSX compiles to Preact's automatic runtime; no React, no Babel.
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    target: 'es2022',
    // Hashed file names under /assets/ let the gateway cache them for a year; index.html is revalidated.
    assetsDir: 'assets',
    // Everything is embedded into the gateway binary: keep files as files (no base64 inlining) so each
    // gets its own content type and ETag, and skip source maps, which would only add weight.
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/api': gateway,
      '/health': gateway,
    },
  },
  test: {
    include: ['test/**/*.test.js'],
    environment: 'node',
  },
});
