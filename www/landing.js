// Landing page: pick a display name (remembered), then create a room with a random readable
// name or join one by name. Both go to /r/<room>, where the join form is pre-filled: the
// click there is the user gesture that lets the page play audio and ask for the mic.

import { cleanName, normalizeRoom, randomRoomName, rememberName, rememberedName } from "./names.js";

const nameInput = document.getElementById("name");
const roomInput = document.getElementById("room");
const nameError = document.getElementById("name-error");
const roomError = document.getElementById("room-error");

nameInput.value = rememberedName();

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

/** Store a valid name if one was typed; an empty name is fine here (asked in the room). */
function keepName() {
  const typed = nameInput.value.trim();
  if (!typed) return true;
  const name = cleanName(typed);
  if (!name) {
    showError(nameError, "Names are 1 to 32 characters, without control characters.");
    nameInput.focus();
    return false;
  }
  showError(nameError, "");
  rememberName(name);
  return true;
}

function go(room) {
  window.location.assign(`/r/${encodeURIComponent(room)}`);
}

document.getElementById("create").addEventListener("click", () => {
  if (keepName()) go(randomRoomName());
});

document.getElementById("landing-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!keepName()) return;
  const room = normalizeRoom(roomInput.value);
  if (!room) {
    showError(roomError, "Room names use 1 to 64 letters a-z, digits and hyphens.");
    roomInput.focus();
    return;
  }
  showError(roomError, "");
  go(room);
});
