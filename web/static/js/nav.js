// The header: the small-screen menu button and the menu groups (disclosure buttons with
// aria-expanded). Loaded in <head> so the page is styled as scripted from the first paint;
// without JavaScript every group's entries are simply listed.
document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", () => {
  const header = document.querySelector(".topbar");
  if (!header) return;
  const menuButton = header.querySelector(".menu-button");
  const siteMenu = document.getElementById("site-menu");
  const toggles = Array.from(header.querySelectorAll(".nav-toggle"));

  function setOpen(toggle, open) {
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.parentElement.classList.toggle("open", open);
  }

  function closeGroups(except) {
    toggles.forEach((t) => { if (t !== except) setOpen(t, false); });
  }

  toggles.forEach((toggle) => {
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      closeGroups(toggle);
      setOpen(toggle, open);
    });
    const menu = document.getElementById(toggle.getAttribute("aria-controls"));
    // Arrow keys move through an open group's entries; Escape closes it.
    toggle.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" && menu) {
        event.preventDefault();
        closeGroups(toggle);
        setOpen(toggle, true);
        const first = menu.querySelector("a");
        if (first) first.focus();
      }
    });
    if (menu) {
      menu.addEventListener("keydown", (event) => {
        const links = Array.from(menu.querySelectorAll("a"));
        const at = links.indexOf(document.activeElement);
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          const step = event.key === "ArrowDown" ? 1 : -1;
          links[(at + step + links.length) % links.length].focus();
        }
      });
    }
  });

  if (menuButton && siteMenu) {
    menuButton.addEventListener("click", () => {
      const open = menuButton.getAttribute("aria-expanded") !== "true";
      menuButton.setAttribute("aria-expanded", open ? "true" : "false");
      header.classList.toggle("menu-open", open);
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const open = toggles.find((t) => t.getAttribute("aria-expanded") === "true");
    if (open) {
      setOpen(open, false);
      open.focus();
    } else if (menuButton && menuButton.getAttribute("aria-expanded") === "true") {
      menuButton.setAttribute("aria-expanded", "false");
      header.classList.remove("menu-open");
      menuButton.focus();
    }
  });

  // A click elsewhere, or focus leaving the header, closes an open group.
  document.addEventListener("click", (event) => {
    if (!event.target.closest(".nav-group")) closeGroups(null);
  });
  header.addEventListener("focusout", (event) => {
    if (event.relatedTarget && !event.relatedTarget.closest(".nav-group.open")) {
      const group = event.target.closest(".nav-group");
      if (group && !group.contains(event.relatedTarget)) closeGroups(null);
    }
  });
});

// A table wider than the screen scrolls inside its .table-wrap; keyboard users can scroll it
// only if the region takes focus, so every such region gets tabindex=0 and a name (its
// section's heading). Pages that render tables later (report pages) are caught as they do.
(() => {
  function label(region) {
    const section = region.closest("section, .card");
    const heading = section && section.querySelector("h1, h2, h3");
    return heading ? heading.textContent.trim() : "Table";
  }
  function reachable(root) {
    root.querySelectorAll(".table-wrap").forEach((region) => {
      if (region.hasAttribute("tabindex") || region.scrollWidth <= region.clientWidth) return;
      region.setAttribute("tabindex", "0");
      region.setAttribute("role", "region");
      if (!region.hasAttribute("aria-label") && !region.hasAttribute("aria-labelledby")) {
        region.setAttribute("aria-label", label(region));
      }
    });
  }
  document.addEventListener("DOMContentLoaded", () => {
    reachable(document);
    window.addEventListener("resize", () => reachable(document));
    const main = document.getElementById("main");
    if (main && window.MutationObserver) {
      let queued = false;
      new MutationObserver(() => {
        if (queued) return;
        queued = true;
        requestAnimationFrame(() => { queued = false; reachable(document); });
      }).observe(main, { childList: true, subtree: true });
    }
  });
})();

