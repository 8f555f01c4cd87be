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

// ---------------------------------------------------------------------------------------------
// Relations graph interaction on entity pages. The server draws the whole graph (nodes are
// links) and writes what this needs: `g[data-node]` around each node, `data-from`/`data-to`/
// `data-type` on each edge and its label, `data-center` on the svg, and hidden controls (a
// checkbox per relation type, zoom buttons). This shows the controls and adds: highlighting of
// a hovered or focused node with its edges and neighbours, filtering by relation type, and
// zoom (buttons, ctrl/cmd + wheel) and pan (drag) through the viewBox. Only classes and the
// viewBox attribute change: no inline styles (the CSP forbids them).
(() => {
  "use strict";
  for (const svg of document.querySelectorAll("svg.graph[data-center]")) {
    const card = svg.closest(".graph-card");
    const controls = card?.querySelector(".graph-controls");
    const center = svg.dataset.center;
    const nodes = new Map(); // ref → g[data-node]
    for (const node of svg.querySelectorAll("[data-node]")) nodes.set(node.dataset.node, node);
    const edges = new Map(); // "from\nto" → {from, to, types, parts: [line, label], shown}
    for (const part of svg.querySelectorAll("[data-from]")) {
      const key = part.dataset.from + "\n" + part.dataset.to;
      let edge = edges.get(key);
      if (!edge) {
        edge = {
          from: part.dataset.from,
          to: part.dataset.to,
          types: (part.dataset.type || "").split(" ").filter(Boolean),
          parts: [],
          shown: true,
        };
        edges.set(key, edge);
      }
      edge.parts.push(part);
    }

    // Highlight: the node, its shown edges and their other ends; the rest dimmed.
    let lit = null;
    const highlight = (node) => {
      if (node && node.classList.contains("is-filtered")) node = null;
      lit = node;
      const ref = node?.dataset.node;
      const near = new Set();
      for (const edge of edges.values()) {
        const on = !!ref && edge.shown && (edge.from === ref || edge.to === ref);
        if (on) near.add(edge.from === ref ? edge.to : edge.from);
        for (const part of edge.parts) {
          part.classList.toggle("is-lit", on);
          part.classList.toggle("is-dim", !!ref && !on);
        }
      }
      for (const [key, each] of nodes) {
        each.classList.toggle("is-active", key === ref);
        each.classList.toggle("is-near", near.has(key));
        each.classList.toggle("is-dim", !!ref && key !== ref && !near.has(key));
      }
      svg.classList.toggle("is-highlighting", !!ref);
    };
    const focused = () => {
      const node = document.activeElement?.closest?.("[data-node]");
      return node && svg.contains(node) ? node : null;
    };

    // Filter: an edge is shown unless one of its types is unchecked; a node is shown while it
    // has a shown edge (the centre always).
    const boxes = controls ? Array.from(controls.querySelectorAll('input[type="checkbox"]')) : [];
    const filter = () => {
      const off = new Set(boxes.filter((box) => !box.checked).map((box) => box.value));
      const linked = new Set([center]);
      for (const edge of edges.values()) {
        edge.shown = !edge.types.some((type) => off.has(type));
        if (edge.shown) linked.add(edge.from).add(edge.to);
        for (const part of edge.parts) part.classList.toggle("is-filtered", !edge.shown);
      }
      for (const [key, node] of nodes) node.classList.toggle("is-filtered", !linked.has(key));
      highlight(lit);
    };
    for (const box of boxes) box.addEventListener("change", filter);

    // Zoom and pan: the viewBox, between an eighth and twice the drawing's own.
    const [x0, y0, w0, h0] = (svg.getAttribute("viewBox") || "").split(/[\s,]+/).map(Number);
    if (![x0, y0, w0, h0].every(Number.isFinite) || w0 <= 0 || h0 <= 0) continue;
    let view = { x: x0, y: y0, w: w0, h: h0 };
    const show = (next) => {
      view = next;
      svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].map((v) => +v.toFixed(2)).join(" "));
      svg.classList.toggle("is-zoomed", view.x !== x0 || view.y !== y0 || view.w !== w0);
    };
    const zoom = (factor, at) => {
      const w = Math.min(w0 * 2, Math.max(w0 / 8, view.w / factor));
      const scale = w / view.w;
      const p = at || { x: view.x + view.w / 2, y: view.y + view.h / 2 };
      show({ x: p.x - (p.x - view.x) * scale, y: p.y - (p.y - view.y) * scale, w, h: view.h * scale });
    };
    const reset = () => show({ x: x0, y: y0, w: w0, h: h0 });
    // A point of the page in the drawing's coordinates.
    const pointAt = (event) => {
      const matrix = svg.getScreenCTM();
      if (!matrix) return null;
      return new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    };
    if (controls) {
      controls.addEventListener("click", (event) => {
        const which = event.target.closest("button[data-zoom]")?.dataset.zoom;
        if (which === "in") zoom(1.25);
        else if (which === "out") zoom(0.8);
        else if (which === "reset") reset();
      });
    }
    svg.addEventListener(
      "wheel",
      (event) => {
        if (!event.ctrlKey && !event.metaKey) return;
        event.preventDefault();
        const factor = Math.min(2, Math.max(0.5, Math.exp(-event.deltaY * 0.002)));
        zoom(factor, pointAt(event));
      },
      { passive: false },
    );

    // Dragging pans; a press that does not move stays a click (and so follows the link).
    let drag = null;
    let dragged = false;
    svg.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || !event.isPrimary) return;
      // On a touch screen the page scrolls over the drawing until it is zoomed.
      if (event.pointerType === "touch" && !svg.classList.contains("is-zoomed")) return;
      const matrix = svg.getScreenCTM();
      if (!matrix || !matrix.a) return;
      drag = { id: event.pointerId, x: event.clientX, y: event.clientY, from: view, unit: matrix.a, moving: false };
      dragged = false;
    });
    svg.addEventListener("pointermove", (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (!drag.moving) {
        if (Math.hypot(dx, dy) < 4) return;
        drag.moving = true;
        svg.setPointerCapture(event.pointerId);
        svg.classList.add("is-panning");
      }
      show({ ...drag.from, x: drag.from.x - dx / drag.unit, y: drag.from.y - dy / drag.unit });
    });
    const stop = (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      dragged = drag.moving;
      drag = null;
      svg.classList.remove("is-panning");
      // The click that ends a drag (if any comes) is not a link followed.
      if (dragged) setTimeout(() => (dragged = false), 0);
    };
    svg.addEventListener("pointerup", stop);
    svg.addEventListener("pointercancel", stop);
    svg.addEventListener(
      "click",
      (event) => {
        if (!dragged) return;
        event.preventDefault();
        event.stopPropagation();
        dragged = false;
      },
      true,
    );
    svg.addEventListener("dragstart", (event) => event.preventDefault());

    // Hover and keyboard focus highlight; leaving returns to the focused node, if any.
    svg.addEventListener("pointerover", (event) => {
      if (drag?.moving) return;
      highlight(event.target.closest("[data-node]") || focused());
    });
    svg.addEventListener("pointerleave", () => {
      if (!drag?.moving) highlight(focused());
    });
    svg.addEventListener("focusin", (event) => highlight(event.target.closest("[data-node]")));
    svg.addEventListener("focusout", (event) => {
      if (!svg.contains(event.relatedTarget)) highlight(null);
    });
    svg.addEventListener("keydown", (event) => {
      if (event.key === "Escape") highlight(null);
    });

    svg.classList.add("is-interactive");
    if (controls) controls.hidden = false;
  }
})();
