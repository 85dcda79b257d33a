// Vite builds the storefront into dist/ (committed: the shopgraph binary
// embeds it). `npm run dev` serves it with hot reload on :5173 and proxies
// the API, websockets included, and the dev sign-in to a running
// `shopgraph dev` (SHOPGRAPH_URL, default http://127.0.0.1:4000).
import { defineConfig } from 'vite';

const target = process.env.SHOPGRAPH_URL ?? 'http://127.0.0.1:4000';

export default defineConfig({
  // JSX through esbuild's automatic runtime (tsconfig `jsx: react-jsx`):
  // no React plugin needed.
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Deterministic output: no build-time values, hashed names only.
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: true,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: {
      '/graphql': { target, ws: true, changeOrigin: true },
      '/dev/token': { target, changeOrigin: true },
    },
  },
});
