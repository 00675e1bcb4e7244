// Sets the page's constants (src/digitlab/web/static/constants.js) from $DIGITLAB_PAGE_CONSTANTS, the JSON of
// Python's `web_export.page_constants()` that tests/web/test_parity.py passes: imported first by every runner.
import { setConstants } from "../../src/digitlab/web/static/constants.js";

setConstants(JSON.parse(process.env.DIGITLAB_PAGE_CONSTANTS));
