// Suggestions as you type in the header search box. Plain ES, no build step, and optional:
// without it the box still submits to /search. Suggestions come from /api/search/suggest and
// are written with textContent (never as HTML).
(() => {
  "use strict";
  const input = document.getElementById("q");
  const list = document.getElementById("suggestions");
  if (!input || !list) return;
  let timer = 0;
  let asked = 0;

  const hide = () => {
    list.hidden = true;
    list.replaceChildren();
    input.setAttribute("aria-expanded", "false");
  };

  // `kind:namespace/name` → the entity page.
  const pageOf = (ref) => {
    const match = /^([^:]+):([^/]+)\/(.+)$/.exec(ref);
    if (!match) return null;
    return "/catalog/" + [match[2], match[1], match[3]].map(encodeURIComponent).join("/");
  };

  const show = (suggestions) => {
    const items = [];
    for (const suggestion of suggestions) {
      const href = pageOf(suggestion.entityRef || "");
      if (!href) continue;
      const item = document.createElement("li");
      item.setAttribute("role", "option");
      const link = document.createElement("a");
      link.href = href;
      link.textContent = suggestion.title || suggestion.name;
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = suggestion.kind;
      link.append(kind);
      item.append(link);
      items.push(item);
    }
    if (items.length === 0) {
      hide();
      return;
    }
    list.replaceChildren(...items);
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  };

  const suggest = async (prefix) => {
    const ticket = ++asked;
    try {
      const params = new URLSearchParams({ prefix, limit: "8" });
      const response = await fetch("/api/search/suggest?" + params, {
        headers: { accept: "application/json" },
      });
      if (!response.ok || ticket !== asked) return;
      const body = await response.json();
      if (ticket === asked) show(body.suggestions || []);
    } catch {
      // Suggestions are a convenience: the form still works.
    }
  };

  input.addEventListener("input", () => {
    clearTimeout(timer);
    const prefix = input.value.trim();
    if (prefix === "") {
      asked++;
      hide();
      return;
    }
    timer = setTimeout(() => suggest(prefix), 120);
  });

  const links = () => Array.from(list.querySelectorAll("a"));
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && !list.hidden) {
      event.preventDefault();
      links()[0]?.focus();
    } else if (event.key === "Escape") {
      hide();
    }
  });
  list.addEventListener("keydown", (event) => {
    const all = links();
    const at = all.indexOf(document.activeElement);
    if (event.key === "ArrowDown") {
      event.preventDefault();
      all[Math.min(at + 1, all.length - 1)]?.focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      if (at <= 0) input.focus();
      else all[at - 1].focus();
    } else if (event.key === "Escape") {
      hide();
      input.focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!list.contains(event.target) && event.target !== input) hide();
  });
})();
