import { describe, expect, it } from "vitest";
import { collectExport, sha256Hex, type ExportChunk } from "./exports";

const digests = new Map<string, string>();
const sha = (text: string) => digests.get(text)!;

async function chunks(
  files: Array<[string, string[]]>,
  tamper?: Partial<ExportChunk>,
): Promise<ExportChunk[]> {
  for (const text of [...files.map(([, parts]) => parts.join("")), "ab!"])
    digests.set(text, await sha256Hex(new TextEncoder().encode(text).buffer));
  return files.flatMap(([name, parts]) =>
    parts.map((part, i) => {
      const last = i === parts.length - 1;
      const whole = parts.join("");
      return {
        fileName: name,
        contentType: "text/csv",
        data: new TextEncoder().encode(part),
        lastChunk: last,
        fileSize: last ? BigInt(new TextEncoder().encode(whole).length) : 0n,
        sha256: last ? sha(whole) : "",
        ...(last ? tamper : {}),
      };
    }),
  );
}

async function* stream(list: ExportChunk[]) {
  yield* list;
}

describe("export downloads", () => {
  it("hashes with SHA-256 as hex", async () => {
    const abc = await sha256Hex(new TextEncoder().encode("abc").buffer);
    expect(abc).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("joins each file's chunks and keeps the declared size and SHA-256", async () => {
    const files = await collectExport(
      stream(
        await chunks([
          ["fills.csv", ["time,side\n", "1,buy\n", "2,sell\n"]],
          ["spec.json", ["{}"]],
        ]),
      ),
    );
    expect(files.map((f) => f.name)).toEqual(["fills.csv", "spec.json"]);
    expect(await files[0]!.blob.text()).toBe("time,side\n1,buy\n2,sell\n");
    expect(files[0]!.sha256).toBe(sha("time,side\n1,buy\n2,sell\n"));
    expect(files[0]!.size).toBe(23);
    expect(files[0]!.blob.type).toBe("text/csv");
  });

  it("refuses a file whose bytes differ from the declared SHA-256", async () => {
    const bad = await chunks([["fills.csv", ["a", "b"]]], { sha256: sha("ab!") });
    await expect(collectExport(stream(bad))).rejects.toThrow(/fills.csv: SHA-256/);
  });

  it("refuses a file whose size differs from the declared one", async () => {
    const bad = await chunks([["fills.csv", ["a", "b"]]], { fileSize: 3n });
    await expect(collectExport(stream(bad))).rejects.toThrow(/received 2 bytes.*declared 3/);
  });

  it("refuses a stream that ends or moves on before a file's last chunk", async () => {
    const cut = (await chunks([["fills.csv", ["a", "b"]]])).slice(0, 1);
    await expect(collectExport(stream(cut))).rejects.toThrow(/ended before its last chunk/);
    const moved = [...cut, ...(await chunks([["spec.json", ["{}"]]]))];
    await expect(collectExport(stream(moved))).rejects.toThrow(/moved to spec.json/);
  });
});
