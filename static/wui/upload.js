// Confirm, then upload with a progress bar; the answer replaces the page's main part. Without
// JavaScript the form posts as usual. Listening on document survives that replacement.
(function () {
  if (window.flotillaFirmwareUpload) return;
  window.flotillaFirmwareUpload = true;

  function mib(n) { return (n / 1048576).toFixed(1) + " MiB"; }

  function showPage(xhr, state) {
    var main = new DOMParser().parseFromString(xhr.responseText, "text/html").querySelector("main");
    if (main) document.querySelector("main").replaceWith(main);
    else state.textContent = "The server answered " + xhr.status + " " + xhr.statusText + ". Try again.";
  }

  function upload(form) {
    var box = form.querySelector(".upload-progress"), bar = box.querySelector("progress"),
        state = box.querySelector(".upload-state"), button = form.querySelector("button"),
        xhr = new XMLHttpRequest();
    box.hidden = false;
    button.disabled = true;
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      bar.value = Math.round(100 * e.loaded / e.total);
      state.textContent = "Transferring: " + bar.value + "%";
    });
    xhr.upload.addEventListener("load", function () { bar.value = 100; state.textContent = "Validating..."; });
    xhr.addEventListener("load", function () { showPage(xhr, state); });
    xhr.addEventListener("error", function () {
      state.textContent = "The upload failed: the connection was lost. Try again.";
      button.disabled = false;
    });
    xhr.open("POST", form.getAttribute("action"));  // form.action is the button named "action"
    xhr.send(new FormData(form));
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "firmware-upload") return;
    var file = form.elements.patch.files[0], max = Number(form.dataset.maxBytes);
    event.preventDefault();
    if (!file) return;
    if (file.size > max) {
      window.alert("The file is too large: " + mib(file.size) + ", over the " + mib(max) + " limit for a software update.");
      return;
    }
    if (window.confirm(form.dataset.confirm.replace("{file}", file.name))) upload(form);
  });
})();
