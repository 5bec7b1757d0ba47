// visionloop UI: the few things a server-rendered page cannot do. No dependencies, no network.
document.addEventListener("DOMContentLoaded", () => {
  // image page: show/hide a class's annotations; highlight an annotation from its row
  document.querySelectorAll("input.toggle").forEach((box) => box.addEventListener("change", () => {
    document.querySelectorAll(".ov .c-" + CSS.escape(box.value)).forEach((el) => el.classList.toggle("hidden", !box.checked));
  }));
  document.querySelectorAll("tr[data-ann]").forEach((row) => {
    const shapes = () => document.querySelectorAll('.ov [data-ann="' + row.dataset.ann + '"]');
    row.addEventListener("mouseenter", () => shapes().forEach((s) => s.classList.add("hl")));
    row.addEventListener("mouseleave", () => shapes().forEach((s) => s.classList.remove("hl")));
  });
  // image page: wheel zooms the image (and its boxes, drawn in image coordinates)
  const viewer = document.getElementById("viewer");
  if (viewer) {
    const frame = viewer.querySelector(".frame");
    let zoom = 1;
    viewer.addEventListener("wheel", (e) => {
      if (!e.ctrlKey && !e.altKey) return;
      e.preventDefault();
      zoom = Math.min(8, Math.max(1, zoom * (e.deltaY < 0 ? 1.2 : 1 / 1.2)));
      frame.style.width = (100 * zoom) + "%";
    }, { passive: false });
  }
  // image page: Shift+drag on the image draws a box and fills the add-box form (image pixels)
  const frame = document.getElementById("frame");
  const form = document.getElementById("add-box");
  if (frame && form) {
    const W = +frame.dataset.width, H = +frame.dataset.height;
    const svg = frame.querySelector("svg");
    let start = null, rect = null;
    const at = (e) => {
      const r = frame.getBoundingClientRect();
      return [Math.min(W, Math.max(0, (e.clientX - r.left) * W / r.width)),
              Math.min(H, Math.max(0, (e.clientY - r.top) * H / r.height))];
    };
    frame.addEventListener("mousedown", (e) => {
      if (!e.shiftKey) return;
      e.preventDefault();
      start = at(e);
      rect = rect || document.createElementNS("http://www.w3.org/2000/svg", "rect");
      rect.setAttribute("class", "draft");
      svg.appendChild(rect);
    });
    window.addEventListener("mousemove", (e) => {
      if (!start) return;
      const [x, y] = at(e);
      const x0 = Math.min(start[0], x), y0 = Math.min(start[1], y);
      rect.setAttribute("x", x0); rect.setAttribute("y", y0);
      rect.setAttribute("width", Math.abs(x - start[0])); rect.setAttribute("height", Math.abs(y - start[1]));
      const v = { x0: x0, y0: y0, x1: Math.max(start[0], x), y1: Math.max(start[1], y) };
      for (const k in v) form.elements[k].value = v[k].toFixed(1);
    });
    window.addEventListener("mouseup", () => { start = null; });
  }
  // the current page in the top bar
  const here = location.pathname.startsWith("/production") ? "production" : location.pathname.startsWith("/versions") ? "versions" : location.pathname.startsWith("/evaluations") ? "evaluations" : location.pathname.startsWith("/models") ? "models" : location.pathname.startsWith("/health") ? "health" : "dataset";
  document.querySelectorAll("nav.top [data-nav]").forEach((a) => { if (a.dataset.nav === here) a.style.color = "#fff"; });
});
