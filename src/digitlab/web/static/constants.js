// Every number the page's preprocessing, reader and verdicts use, written from digitlab's Python constants: not
// typed here. `digitlab export --format web` puts them in model/web.json ("constants", from
// `inference.web_export.page_constants`) and the browser backend sets them before its first answer; the node
// tests set the same object. Reading one before that is a bug, so it throws instead of answering with undefined.

const values = {};

/** Set every constant (an object of NAME → number, list or text), as web.json's "constants" holds them. */
export function setConstants(constants) {
  Object.assign(values, constants);
}

/** The constants by name: C.WORK_SIZE, … */
export const C = new Proxy(values, {
  get(target, name) {
    if (!(name in target)) throw new Error(`constant ${String(name)} is not set: load web.json's constants first`);
    return target[name];
  },
});
