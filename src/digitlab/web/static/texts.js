// What the draw page and the notebook widget say about an answer: one wording for both (page.js imports this
// module; the widget's single ES module inlines it, see digitlab/notebook/widget.py).

/** A probability in [0, 1] as a percentage with one decimal. */
export const pct = (p) => `${(p * 100).toFixed(1)}%`;

/** A verdict's reason as a sentence, without the API's pointer to `read` (the page has a Number mode). */
export function sentence(reason) {
  const text = reason.replace(/; use read for numbers$/, "");
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

/** The status under a digit: how sure, and the runner-up. `top`: [{label, probability}, …], most probable first. */
export const digitStatus = (top) => `${pct(top[0].probability)} sure` + (top[1] ? `; next: ${top[1].label} (${pct(top[1].probability)})` : "");

/** The status under a reading of `n` digits whose joint confidence is `confidence`. */
export const readingStatus = (n, confidence) =>
  `${n} digit${n === 1 ? "" : "s"}, ${pct(confidence)} sure of ${n === 1 ? "it" : n === 2 ? "both" : "all " + n}`;

/** The status when a digit is refused ("several digits", "not a digit"): its reason, or the verdict in words. */
export const refusedStatus = (reason, verdict) => sentence(reason || verdict.replace(/_/g, " "));

export const NO_DIGIT = "No digit found. Draw one digit, larger.";
export const NO_NUMBER = "No digits found. Write a number, larger.";
