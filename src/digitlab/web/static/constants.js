// Every number the page's preprocessing, reader and verdicts use, written from digitlab's Python constants: not
// typed here. `digitlab export --format web` puts them in model/web.json ("constants", from
// `inference.web_export.page_constants`) and the browser backend sets them before its first answer (it refuses a
// web.json without them); the node tests set the same object, and tests/web/test_parity.py checks that the
// JavaScript reads exactly the names Python gives. A plain object, not a checking Proxy: the preprocessing reads
// some of them once per pixel.

/** The constants by name: C.WORK_SIZE, … (empty until `setConstants`). */
export const C = {};

/** Set every constant (an object of NAME → number, list or text), as web.json's "constants" holds them. */
export function setConstants(constants) {
  Object.assign(C, constants);
}
