// Vite builds GraphiQL into dist/ (committed: the router and every subgraph
// embed it through shopgraph-core and serve it under /graphiql/). The page
// at `GET /graphql` (for a browser) is dist/index.html, with the server's
// title and subscription path filled in; its script and stylesheet are
// content-hashed files under /graphiql/assets/.
//
// `npm run dev` serves it with hot reload on :5174 and proxies /graphql
// (websockets included) to a running `shopgraph dev` (SHOPGRAPH_URL,
// default http://127.0.0.1:4000): open http://127.0.0.1:5174/graphiql/.
import { defineConfig } from 'vite';

const target = process.env.SHOPGRAPH_URL ?? 'http://127.0.0.1:4000';

export default defineConfig({
  base: '/graphiql/',
  // JSX through esbuild's automatic runtime (tsconfig `jsx: react-jsx`).
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Deterministic output: no build-time values, hashed names only.
    sourcemap: false,
    target: 'es2022',
    // Never inline an asset as a data: URL into the script or CSS beyond
    // what the packages already inline (GraphiQL's fonts).
    assetsInlineLimit: 0,
    // GraphiQL (React, CodeMirror 5, the GraphQL language service) is one
    // ~1 MB script; it is loaded once and cached for a year.
    chunkSizeWarningLimit: 2000,
    reportCompressedSize: true,
    rollupOptions: {
      onwarn(warning, warn) {
        // Radix, framer-motion and Headless UI mark their modules
        // "use client" (for React Server Components); meaningless in a
        // browser bundle, and one warning per module.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  server: {
    host: '127.0.0.1',
    port: 5174,
    proxy: {
      '/graphql': { target, ws: true, changeOrigin: true },
    },
  },
});
