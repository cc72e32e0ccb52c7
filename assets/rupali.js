// Small behaviours the server asks for by name (see pages/studio.py `_reveal`).

// Scroll a NiceGUI element into view below the sticky header. The element may not be rendered yet when the
// request arrives (updates and scripts travel in the same message), so wait a few frames for it. With
// `onlyIfWatched`, scroll only when part of it is on screen: a card that grew as its images arrived is kept in
// view, but nobody reading elsewhere on the page is pulled away.
window.rupaliReveal = (id, onlyIfWatched) => {
  const attempt = (framesLeft) => {
    const element = document.getElementById(`c${id}`);
    if (!element) {
      if (framesLeft > 0) requestAnimationFrame(() => attempt(framesLeft - 1));
      return;
    }
    const box = element.getBoundingClientRect();
    const header = document.querySelector(".r-header");
    const top = header ? header.getBoundingClientRect().bottom : 0;
    const visible = box.bottom > top && box.top < window.innerHeight;
    if (onlyIfWatched && !visible) return;
    if (box.top >= top && box.bottom <= window.innerHeight) return; // already wholly in view
    const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    element.scrollIntoView({ block: "start", behavior: reduce ? "auto" : "smooth" });
  };
  attempt(30);
};

// Sign out with a POST, as a form would: a plain link (a GET) could be triggered by any other site.
window.rupaliSignOut = () => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/auth/signout";
  document.body.appendChild(form);
  form.submit();
};
