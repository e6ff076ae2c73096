// What the room page shows, derived from state: the session (connection, notice), the floor
// machine, the room and the latch switch go in; ui.js's renderers draw it.
//
// `describeTalk` is the pure part (the Talk button's state and texts; tests call it
// directly); `RoomView` draws a whole snapshot and keeps the two things that tick on their
// own: the level meter and, while we talk, the once-a-second countdown.

import { State } from "./ptt.js";
import { LevelMeter } from "./meter.js";
import { cleanName, rememberedName } from "./names.js";
import {
  els,
  fieldError,
  flashLabel,
  renderConn,
  renderMembers,
  renderMode,
  renderNotice,
  renderPtt,
  renderSelfStatus,
  renderTalker,
} from "./ui.js";

const REVOKE_TEXT = {
  max_talk_time: "Time is up: release, then press again to talk more.",
  lost: "You lost the floor.",
  // The server heard no audio from us for a few seconds (frozen tab, dead network, mic gone).
  no_media: "Your audio stopped reaching the room, so your turn ended. Check your connection and microphone, then press again.",
};

function formatSeconds(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * The Talk button: `state` (the floor state, or "disabled" while talking is impossible), its
 * small second line `sub`, and the status line under it.
 * @param {{canTalk: boolean, connection: string, detail: string,
 *          floor: {state: string, position: number, reason: string, busyHolder: ?object},
 *          latch: boolean, talker: ?{name: string}, talkDeadline: ?number, now: number}} s
 */
export function describeTalk(s) {
  const { floor, latch } = s;
  const state = s.canTalk ? floor.state : "disabled";
  const talkerName = s.talker ? s.talker.name : "";
  switch (state) {
    case "disabled":
      return {
        state,
        sub: s.connection === "failed" ? "Not connected" : "Connecting…",
        status: s.detail || "Connecting…",
      };
    case State.REQUESTING:
      return { state, sub: "Requesting…", status: "Asking for the floor…" };
    case State.TALKING: {
      const status =
        s.talkDeadline === null ? "You are on air." : `You are on air · ${formatSeconds(s.talkDeadline - s.now)} left`;
      return { state, sub: latch ? "Tap to stop" : "Release to stop", status };
    }
    case State.QUEUED: {
      const n = floor.position;
      const status = latch
        ? `You are #${n} in line. You talk next when it's your turn.`
        : `You are #${n} in line${talkerName ? `, after ${talkerName}` : ""}. Keep holding to talk next.`;
      return { state, sub: `Queued #${n}`, status };
    }
    case State.BUSY: {
      const who = (floor.busyHolder && floor.busyHolder.name) || talkerName;
      let status = who ? `Busy: ${who} is talking.` : "Busy: someone else is talking.";
      if (floor.reason === "rate_limited") status = "Too many presses. Wait a moment.";
      return { state, sub: "Busy", status };
    }
    case State.REVOKED:
      return {
        state,
        sub: floor.reason === "no_media" ? "No audio" : "Stopped",
        status: REVOKE_TEXT[floor.reason] || `Your turn was ended (${floor.reason}).`,
      };
    default:
      return {
        state,
        sub: latch ? "Tap to talk" : "Hold to talk",
        status: s.talker ? `${talkerName} is talking.` : "Ready. The channel is clear.",
      };
  }
}

export class RoomView {
  /**
   * @param {() => number} level the level to meter (0..1, negative when unknown)
   * @param {() => void} tick called once a second while we talk (to redraw the countdown)
   */
  constructor(level, tick) {
    this.meter = new LevelMeter(els.meterBar);
    this.level = level;
    this.tick = tick;
    this._countdown = 0;
    this._notice = null;
  }

  /** Room name and link, once. */
  showRoom(room, link) {
    document.title = `#${room} · walkie`;
    els.roomName.textContent = room;
    els.joinRoom.textContent = `#${room}`;
    els.roomLink.value = link;
  }

  /**
   * Draw everything. `session`: connection, detail, mode, notice, canTalk (session.js);
   * `floor`: the FloorMachine; `room`: the RoomState; `now`: the clock of talkDeadline.
   */
  render({ session, floor, room, latch, now }) {
    renderConn(session.connection);
    renderMode(session.mode);
    if (this._notice !== session.notice) {
      // Only on change: the notice is an alert, re-setting it would announce it again.
      this._notice = session.notice;
      renderNotice(session.notice.text, session.notice.retry);
    }
    const talk = describeTalk({
      canTalk: session.canTalk,
      connection: session.connection,
      detail: session.detail,
      floor,
      latch,
      talker: room.talker,
      talkDeadline: room.talkDeadline,
      now,
    });
    renderPtt(talk.state, talk.sub, latch);
    renderSelfStatus(talk.status);

    const youId = room.you ? room.you.id : null;
    const talkerId = room.talker ? room.talker.id : null;
    const who = room.talker ? (talkerId === youId ? { self: true } : { name: room.talker.name }) : null;
    renderTalker(session.canTalk || room.you ? who : null, room.queueLength);
    renderMembers([...room.members.values()], youId, talkerId);
    const talking = floor.state === State.TALKING;
    this.meter.setSource(who || talking ? this.level : null);

    if (talking && !this._countdown) {
      this._countdown = setInterval(this.tick, 1000);
    } else if (!talking && this._countdown) {
      clearInterval(this._countdown);
      this._countdown = 0;
    }
  }

  /** Fill in and focus the join form (once, when it appears: never while the user types). */
  showJoinForm(name, nameError, passwordError) {
    renderMode("join"); // now, not at the next render: a hidden field cannot take the focus
    els.joinName.value = name || rememberedName();
    fieldError(els.joinNameError, nameError);
    fieldError(els.joinPwError, passwordError);
    if (passwordError) {
      els.joinPwBox.open = true;
      els.joinPassword.value = "";
      els.joinPassword.focus();
    } else if (!els.joinName.value || nameError) {
      els.joinName.focus();
    } else {
      els.joinSubmit.focus();
    }
  }

  /** The submitted join form: {name, password}, or null (and the error shown) if unusable. */
  readJoinForm() {
    const name = cleanName(els.joinName.value);
    if (!name) {
      fieldError(els.joinNameError, "Please enter a name of 1 to 32 characters.");
      els.joinName.focus();
      return null;
    }
    return { name, password: els.joinPassword.value };
  }

  /** "Copied" on the copy button for a moment. */
  copied() {
    flashLabel(els.copyLink, "Copied");
  }
}
