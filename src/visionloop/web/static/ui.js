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
  // the current page in the top bar
  const here = location.pathname.startsWith("/production") ? "production" : location.pathname.startsWith("/versions") ? "versions" : location.pathname.startsWith("/evaluations") ? "evaluations" : location.pathname.startsWith("/models") ? "models" : location.pathname.startsWith("/health") ? "health" : "dataset";
  document.querySelectorAll("nav.top [data-nav]").forEach((a) => { if (a.dataset.nav === here) a.style.color = "#fff"; });
});
