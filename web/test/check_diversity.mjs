// The page's diversity readouts (web/src/engine.mjs) on recorded features/images (tests/test_live_export.py writes
// them): prints each case's JavaScript values as JSON on stdout.
import { readFileSync } from "node:fs";
import { meanPairwiseCosineDistance, meanPairwiseDistance } from "../src/engine.mjs";

const ref = JSON.parse(readFileSync(process.argv[2], "utf8"));
console.log(JSON.stringify(ref.cases.map((c) => ({
  cosine: meanPairwiseCosineDistance(Float32Array.from(c.features), c.batch),
  pixel: c.images ? meanPairwiseDistance(Float32Array.from(c.images), c.batch) : null,
}))));
