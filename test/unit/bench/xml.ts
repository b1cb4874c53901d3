/**
 * A strict, small XML parser for the tests of the bench plots: it accepts well-formed XML 1.0
 * (one root element, matched tags, quoted attributes without duplicates, only the predefined and
 * numeric entity references, comments and a prolog) and throws on anything else, so a plot that
 * parses here opens in a browser or rsvg. Not for DTDs or CDATA, which the plots do not use.
 */

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Text directly inside, entities decoded, in order. */
  text: string;
}

const NAME = /^[A-Za-z_:][A-Za-z0-9_:.-]*/;
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(s: string, where: number): string {
  return s.replace(/&([^;&\s]*);?/g, (m, body: string) => {
    if (!m.endsWith(";")) throw new Error(`bare & at ${where}`);
    if (body in ENTITIES) return ENTITIES[body];
    const n = /^#x([0-9a-fA-F]+)$/.exec(body) ?? /^#([0-9]+)$/.exec(body);
    if (n) return String.fromCodePoint(parseInt(n[1], body[1] === "x" ? 16 : 10));
    throw new Error(`unknown entity &${body}; at ${where}`);
  });
}

export function parseXml(src: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  const fail = (why: string): never => {
    throw new Error(`${why} at offset ${i}: ${JSON.stringify(src.slice(i, i + 40))}`);
  };
  const skipMisc = () => {
    for (;;) {
      while (i < src.length && /\s/.test(src[i])) i++;
      if (src.startsWith("<!--", i)) {
        const e = src.indexOf("-->", i + 4);
        if (e < 0) fail("unclosed comment");
        i = e + 3;
      } else return;
    }
  };
  if (src.startsWith("<?xml")) {
    const e = src.indexOf("?>");
    if (e < 0) fail("unclosed prolog");
    i = e + 2;
  }
  skipMisc();
  while (i < src.length) {
    if (src.startsWith("<!--", i)) {
      const e = src.indexOf("-->", i + 4);
      if (e < 0) fail("unclosed comment");
      i = e + 3;
    } else if (src.startsWith("</", i)) {
      i += 2;
      const m = NAME.exec(src.slice(i)) ?? fail("bad end tag name");
      i += m[0].length;
      while (/\s/.test(src[i] ?? "")) i++;
      if (src[i] !== ">") fail("bad end tag");
      i++;
      const open = stack.pop() ?? fail("end tag without start tag");
      if (open.name !== m[0]) fail(`</${m[0]}> closes <${open.name}>`);
      if (stack.length === 0) {
        skipMisc();
        if (i < src.length) fail("content after the root element");
      }
    } else if (src[i] === "<") {
      if (root && stack.length === 0) fail("second root element");
      i++;
      const m = NAME.exec(src.slice(i)) ?? fail("bad tag name");
      i += m[0].length;
      const el: XmlElement = { name: m[0], attrs: {}, children: [], text: "" };
      for (;;) {
        const ws = /^\s*/.exec(src.slice(i))![0].length;
        i += ws;
        if (src.startsWith("/>", i) || src[i] === ">") break;
        if (ws === 0) fail("no space before attribute");
        const a = NAME.exec(src.slice(i)) ?? fail("bad attribute name");
        i += a[0].length;
        if (src[i] !== "=") fail("attribute without =");
        i++;
        const q = src[i];
        if (q !== '"' && q !== "'") fail("unquoted attribute");
        const e = src.indexOf(q, i + 1);
        if (e < 0) fail("unclosed attribute value");
        const raw = src.slice(i + 1, e);
        if (raw.includes("<")) fail("< in attribute value");
        if (a[0] in el.attrs) fail(`duplicate attribute ${a[0]}`);
        el.attrs[a[0]] = decode(raw, i);
        i = e + 1;
      }
      if (stack.length) stack[stack.length - 1].children.push(el);
      else root = el;
      if (src.startsWith("/>", i)) {
        i += 2;
        if (stack.length === 0) {
          skipMisc();
          if (i < src.length) fail("content after the root element");
        }
      } else {
        i++;
        stack.push(el);
      }
    } else {
      if (stack.length === 0) fail("text outside the root element");
      const e = src.indexOf("<", i);
      const end = e < 0 ? src.length : e;
      const raw = src.slice(i, end);
      if (raw.includes(">") && raw.includes("]]>")) fail("]]> in text");
      stack[stack.length - 1].text += decode(raw, i);
      i = end;
    }
  }
  if (stack.length) fail(`unclosed <${stack[stack.length - 1].name}>`);
  return root ?? fail("no root element");
}

/** Every element under `el` (itself included), depth first. */
export function walk(el: XmlElement): XmlElement[] {
  return [el, ...el.children.flatMap(walk)];
}

/** Elements under `el` whose class attribute holds `cls`. */
export function byClass(el: XmlElement, cls: string): XmlElement[] {
  return walk(el).filter((e) => (e.attrs.class ?? "").split(/\s+/).includes(cls));
}

/** The text of an element and its descendants, as a reader sees it (tspans included). */
export function textOf(el: XmlElement): string {
  return [el.text, ...el.children.map(textOf)].filter((s) => s !== "").join(" ");
}
