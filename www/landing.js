// Landing page: pick a display name (remembered), then create a room with a name of six
// random words that nobody can guess (names.js), or join one by name (a typed name is public
// unless the room has a password: the page says so). Both go to /r/<room>, where the join form is pre-filled: the
// click there is the user gesture that lets the page play audio and ask for the mic.

import { checkName, normalizeRoom, randomRoomName, rememberName, rememberedName } from "./names.js";
import { registerServiceWorker } from "./install.js";

registerServiceWorker(); // installable as an app; an offline page when the server is out of reach

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
  const { name, error } = checkName(typed);
  if (!name) {
    showError(nameError, `That name cannot be used: ${error}.`);
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
