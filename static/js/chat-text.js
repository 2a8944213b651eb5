// Message text as the page shows it, rendered as the server renders it
// (conversations/rendering.py): markdown-it 14.1, the version markdown-it-py ports, with the same
// preset and rules (no raw HTML, headings, rules, tables or images), then an allow-list
// sanitiser with the server's tags, attributes and links. A reply is rendered again as it
// streams, so the parser has to stay linear on any text.
// Both libraries are vendored under static/vendor/ and loaded before this module.

const ALLOWED_ATTRIBUTES = { A: ["href"], OL: ["start"] };
const SANITISE = {
  ALLOWED_TAGS: ["p", "em", "strong", "br", "blockquote", "code", "pre", "ul", "ol", "li", "a"],
  ALLOWED_ATTR: ["href", "start"],
  ADD_URI_SAFE_ATTR: ["start"],  // a list's first number is not an address
  // Absolute web and mail addresses only: a relative link would point into this site.
  ALLOWED_URI_REGEXP: /^(?:https?|mailto):/i,
  RETURN_DOM_FRAGMENT: true,
};

function parses(address) {
  try {
    new URL(address);
    return true;
  } catch {
    return false;
  }
}

function makeRenderer() {
  if (typeof globalThis.markdownit !== "function" || typeof globalThis.DOMPurify !== "function") {
    return null;
  }
  const markdown = globalThis
    .markdownit("default", { breaks: true })
    .disable(["heading", "lheading", "table", "image", "hr"]);
  const purify = globalThis.DOMPurify(window);
  purify.addHook("uponSanitizeAttribute", (node, data) => {
    const allowed = ALLOWED_ATTRIBUTES[node.nodeName] || [];
    // The server's sanitiser also drops an address it cannot parse (`http://`, a bad port).
    if (!allowed.includes(data.attrName) || (data.attrName === "href" && !parses(data.attrValue))) {
      data.keepAttr = false;
    }
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "A") node.setAttribute("rel", "noopener nofollow ugc");
  });
  return (text) => purify.sanitize(markdown.render(text), SANITISE);
}

// Without the libraries (a failed download) the chat still works, showing text as written.
const render = makeRenderer();

export function renderText(source) {
  const text = String(source || "");
  if (render) return render(text);
  const fragment = document.createDocumentFragment();
  fragment.append(text);
  return fragment;
}
