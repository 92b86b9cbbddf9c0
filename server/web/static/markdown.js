// Markdown to DOM for model output: headings, lists, quotes, code blocks, emphasis,
// inline code and links. Every piece of text becomes a text node and only a fixed set
// of elements is created, so model output can never inject markup or script. An
// unfinished code fence (mid-stream) renders as code up to the end.

const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)/g;
const SAFE_LINK = /^(https?:\/\/|mailto:)/i;

function inline(parent, text) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) parent.append(text.slice(last, match.index));
    const [whole, , code, strong1, strong2, em1, em2, label, href] = match;
    let node;
    if (code !== undefined) {
      node = document.createElement("code");
      node.textContent = code.trim();
    } else if (strong1 !== undefined || strong2 !== undefined) {
      node = document.createElement("strong");
      inline(node, strong1 ?? strong2);
    } else if (em1 !== undefined || em2 !== undefined) {
      node = document.createElement("em");
      inline(node, em1 ?? em2);
    } else if (SAFE_LINK.test(href)) {
      node = document.createElement("a");
      node.href = href;
      node.rel = "noopener noreferrer nofollow";
      node.target = "_blank";
      inline(node, label);
    } else {
      node = document.createTextNode(whole);
    }
    parent.append(node);
    last = match.index + whole.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function paragraph(lines) {
  const p = document.createElement("p");
  lines.forEach((line, i) => {
    if (i > 0) p.append(document.createElement("br"));
    inline(p, line);
  });
  return p;
}

const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*(\d+)[.)]\s+(.*)$/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const QUOTE = /^\s*>\s?(.*)$/;

export function renderMarkdown(text) {
  const out = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].match(FENCE)) body.push(lines[i++]);
      i += 1; // the closing fence, if it has arrived
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      if (fence[2]) code.dataset.lang = fence[2];
      code.textContent = body.join("\n");
      pre.append(code);
      out.append(pre);
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      // Answers sit under the page's own headings: # becomes h3, and so on.
      const h = document.createElement(`h${Math.min(heading[1].length + 2, 6)}`);
      inline(h, heading[2]);
      out.append(h);
      i += 1;
      continue;
    }
    if (BULLET.test(line) || NUMBERED.test(line)) {
      const ordered = NUMBERED.test(line);
      const list = document.createElement(ordered ? "ol" : "ul");
      const first = line.match(NUMBERED);
      if (ordered && first[1] !== "1") list.start = Number(first[1]);
      const item = ordered ? NUMBERED : BULLET;
      while (i < lines.length && item.test(lines[i])) {
        const li = document.createElement("li");
        const match = lines[i].match(item);
        inline(li, match[match.length - 1]);
        list.append(li);
        i += 1;
      }
      out.append(list);
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].match(QUOTE)[1]);
      const blockquote = document.createElement("blockquote");
      blockquote.append(renderMarkdown(quoted.join("\n")));
      out.append(blockquote);
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !HEADING.test(lines[i])
           && !BULLET.test(lines[i]) && !NUMBERED.test(lines[i]) && !QUOTE.test(lines[i])) {
      para.push(lines[i++]);
    }
    out.append(paragraph(para));
  }
  return out;
}
