// The REST API page's Send buttons: one call with the operator's own session and CSRF token.
document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form.api-try");
  if (!form) return;
  event.preventDefault();
  const out = form.querySelector("output pre");
  const method = form.dataset.method;
  const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  const options = { method, headers: { ...headers, Accept: "application/json" }, credentials: "same-origin" };
  const body = form.elements.body ? form.elements.body.value.trim() : "";
  if (body && method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    options.body = body;
  }
  out.textContent = "…";
  try {
    const response = await fetch(form.elements.path.value, options);
    const type = response.headers.get("Content-Type") || "";
    let shown;
    if (type.startsWith("application/json")) {
      const text = await response.text();
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { shown = text; }
    } else {
      // A file (a backup): said, not printed.
      const size = (await response.blob()).size;
      shown = `(a ${type || "file"} of ${size} bytes: ${response.headers.get("Content-Disposition") || "no name"})`;
    }
    out.textContent = `${response.status} ${response.statusText}\n${shown}`;
  } catch (error) {
    out.textContent = `The request failed: ${error}`;
  }
});
