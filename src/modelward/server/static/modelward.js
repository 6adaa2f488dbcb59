// modelward hub: copy buttons for the pull commands (no framework, works without a secure context).
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (_) {
    // navigator.clipboard needs https or localhost: fall back to selecting the text.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    copied = document.execCommand && document.execCommand("copy");
  }
  button.textContent = copied ? "Copied" : "Press Ctrl+C";
  const status = document.querySelector(".copy-status");
  if (status) status.textContent = copied ? "Copied to the clipboard." : "Text selected: press Ctrl+C to copy.";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
});
