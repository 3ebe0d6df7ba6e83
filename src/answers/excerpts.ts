// The bounded excerpts of a step's output a model may see: its head and tail, never the whole log.
/** The head and tail of a step's output within `budget` characters, saying what was left out. */
export function excerpt(text: string, budget: number): string {
  if (text.length <= budget) return text;
  const head = Math.floor(budget / 4);
  const tail = budget - head;
  return `${text.slice(0, head)}\n[… ${text.length - budget} characters left out …]\n${text.slice(-tail)}`;
}
