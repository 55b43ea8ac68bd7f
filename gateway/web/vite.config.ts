import { defineConfig } from "vitest/config";
import { viteSingleFile } from "vite-plugin-singlefile";

// One self-contained index.html: Envoy serves it with a single direct_response route.
export default defineConfig({
  plugins: [viteSingleFile()],
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, reportCompressedSize: true },
  server: {
    // `npm run dev` talks to a running stack's gateway.
    proxy: { "^/(tapedeck|grpc)\\.": { target: "http://127.0.0.1:8080", changeOrigin: true } },
  },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
