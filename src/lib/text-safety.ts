// Text that reaches a person: characters that can reorder or hide what is shown (bidi controls,
// zero-width characters) are made visible, and terminal control sequences are removed, so a
// plan, a file name or a log line cannot disguise itself as something else.

// U+202A–U+202E embeddings/overrides, U+2066–U+2069 isolates, U+200E/F marks, U+061C Arabic mark;
// U+200B–U+200D zero-width space/joiners, U+2060 word joiner, U+FEFF zero-width no-break space.
const INVISIBLE = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C\u200B-\u200D\u2060\uFEFF]/g;

const codePoint = (ch: string): string => `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;

/** Replaces each bidi or zero-width character with a visible ⟨U+XXXX⟩ marker. */
export function makeVisible(text: string): string {
  return text.replace(INVISIBLE, (ch) => `⟨${codePoint(ch)}⟩`);
}

/** Removes bidi and zero-width characters (when there is no room to show them). */
export function stripInvisible(text: string): string {
  return text.replace(INVISIBLE, "");
}

export function hasInvisible(text: string): boolean {
  INVISIBLE.lastIndex = 0;
  const found = INVISIBLE.test(text);
  INVISIBLE.lastIndex = 0;
  return found;
}

// ESC-introduced sequences: CSI (ESC [ … final), OSC/DCS/SOS/PM/APC (ESC ] P X ^ _ … BEL or ST),
// and two-character escapes; then the 8-bit C1 forms of CSI/OSC; then any other C0/C1 control.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CSI = /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]?/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const STRING_SEQ = /(?:\u001b[\]PX^_]|[\u0090\u0098\u009d\u009e\u009f])[\s\S]*?(?:\u0007|\u001b\\|\u009c|$)/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const ESC_TWO = /\u001b[\s\S]?/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/**
 * Job output made safe for a terminal: escape and control sequences removed (only \n and \t
 * kept; \r too, since it can overwrite what was printed), bidi/zero-width made visible.
 */
export function safeForTerminal(text: string): string {
  return makeVisible(text.replace(STRING_SEQ, "").replace(CSI, "").replace(ESC_TWO, "").replace(CONTROLS, ""));
}
