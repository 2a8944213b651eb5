// Message text as the page shows it: the same Markdown subset the server renders
// (conversations/rendering.py: markdown-it without raw HTML, headings, rules, tables or images,
// then an allow-list sanitiser). Text only ever reaches the page through text nodes, so markup
// in a reply, a card or a message shows as the characters it is made of.

function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const INDENTED = /^(?: {4}|\t)/;
const QUOTE = /^ {0,3}> ?/;
const BULLET = /^ {0,3}([-+*])[ \t]+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)][ \t]+(.*)$/;
const MAX_DEPTH = 6;

export function renderText(source) {
  const fragment = document.createDocumentFragment();
  renderBlocks(fragment, String(source || "").replace(/\r\n?/g, "\n").split("\n"), 0);
  return fragment;
}

function renderBlocks(parent, lines, depth) {
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) parent.append(renderInline(el("p"), paragraph.join("\n")));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      flush();
    } else if ((m = line.match(FENCE))) {
      flush();
      const body = [];
      while (i + 1 < lines.length && !lines[i + 1].trim().startsWith(m[1])) body.push(lines[++i]);
      i++;
      parent.append(codeBlock(body.length ? body.join("\n") + "\n" : ""));
    } else if (depth < MAX_DEPTH && QUOTE.test(line)) {
      flush();
      const inner = [];
      while (i < lines.length && QUOTE.test(lines[i])) inner.push(lines[i++].replace(QUOTE, ""));
      i--;
      const quote = el("blockquote");
      renderBlocks(quote, inner, depth + 1);
      parent.append(quote);
    } else if (!paragraph.length && INDENTED.test(line)) {
      const body = [];
      while (i < lines.length && (INDENTED.test(lines[i]) || !lines[i].trim())) {
        body.push(lines[i++].replace(INDENTED, ""));
      }
      i--;
      while (body.length && !body[body.length - 1].trim()) body.pop();
      parent.append(codeBlock(body.join("\n") + "\n"));
    } else if ((m = line.match(BULLET) || line.match(ORDERED))) {
      flush();
      i = renderList(parent, lines, i, depth) - 1;
    } else {
      paragraph.push(line.trim());
    }
  }
  flush();
}

function codeBlock(text) {
  return wrap(el("pre"), el("code", text));
}

function wrap(parent, child) {
  parent.append(child);
  return parent;
}

function renderList(parent, lines, start, depth) {
  const ordered = !lines[start].match(BULLET);
  const pattern = ordered ? ORDERED : BULLET;
  const first = lines[start].match(pattern);
  const list = el(ordered ? "ol" : "ul");
  if (ordered && first[1] !== "1") list.setAttribute("start", String(Number(first[1])));
  let i = start;
  while (i < lines.length) {
    const m = lines[i].match(pattern);
    if (!m) break;
    const item = [m[2]];
    i++;
    while (i < lines.length && lines[i].trim() && !BULLET.test(lines[i]) && !ORDERED.test(lines[i])) {
      item.push(lines[i++].trim());
    }
    list.append(renderInline(el("li"), item.join("\n")));
    if (i < lines.length && !lines[i].trim()) break;
  }
  parent.append(list);
  return i;
}

// Earliest match wins; ties go to the rule listed first (*** before ** before *).
const INLINE = [
  { re: /\\([!-/:-@[-`{-~])/, make: (m) => document.createTextNode(m[1]) },
  { re: /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/, make: (m) => el("code", m[2]) },
  { re: /\*\*\*(?=[^\s*])([\s\S]*?[^\s*])\*\*\*/, make: (m) => wrap(el("em"), renderInline(el("strong"), m[1])) },
  { re: /\*\*(?=\S)([\s\S]*?\S)\*\*/, tag: "strong" },
  { re: /(?<![\p{L}\p{N}_])__(?=\S)([\s\S]*?\S)__(?![\p{L}\p{N}_])/u, tag: "strong" },
  { re: /\*(?=[^\s*])([\s\S]*?[^\s*]|[^\s*])\*/, tag: "em" },
  { re: /(?<![\p{L}\p{N}_])_(?=\S)([\s\S]*?\S)_(?![\p{L}\p{N}_])/u, tag: "em" },
  // Strikethrough parses, but the server's sanitiser drops <s> and keeps its text.
  { re: /~~(?=\S)([\s\S]*?\S)~~/, make: (m) => renderInline(document.createDocumentFragment(), m[1]) },
  { re: /<((?:https?|mailto):[^\s<>]*)>/i, make: (m) => link(m[1], m[1], m[0]) },
  { re: /\[([^\]]*)\]\(\s*<?([^\s)>]*)>?(?:\s+"[^"]*")?\s*\)/, make: (m) => link(m[2], m[1], m[0]) },
];

// Only web and mail links keep their address, as the server's sanitiser allows; a script or
// file address is not a link at all (markdown-it leaves such text as it was written).
function link(href, label, source) {
  if (/^(javascript|vbscript|file|data):/i.test(href) && !/^data:image\/(gif|png|jpeg|webp);/i.test(href)) {
    return document.createTextNode(source);
  }
  const a = el("a");
  if (/^(https?:|mailto:)/i.test(href)) {
    a.setAttribute("href", href);
    a.setAttribute("rel", "noopener nofollow ugc");
  }
  return renderInline(a, label);
}

function renderInline(parent, text) {
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const m = rule.re.exec(rest);
      if (m && (!best || m.index < best.m.index)) best = { rule, m };
    }
    if (!best) {
      parent.append(document.createTextNode(rest));
      break;
    }
    const { rule, m } = best;
    if (m.index) parent.append(document.createTextNode(rest.slice(0, m.index)));
    parent.append(rule.make ? rule.make(m) : renderInline(el(rule.tag), m[1]));
    rest = rest.slice(m.index + m[0].length);
  }
  return parent;
}
