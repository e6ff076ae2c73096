// Telling the user what happens while they are not looking at the Talk button: the lock
// screen and headset (headset.js), the hidden tab's title and tone and the screen reader's
// live region (attention.js). The deciding is done there, purely; this performs it.
//
// `update` runs after every change the page draws (app.js `render`), with a snapshot of the
// room; each part acts only on what changed since the last one.

import { Announcer, Attention } from "./attention.js";
import { MediaSessionControls, describeMediaSession } from "./headset.js";
import { playTone } from "./tones.js";

/** Messages kept in the live region (older ones are removed; screen readers have said them). */
const KEEP = 4;

export class Notifier {
  /**
   * @param {string} room
   * @param {HTMLElement} region the polite live region (role="log")
   * @param {string} baseTitle the page's title while nobody needs attention
   */
  constructor(room, region, baseTitle) {
    this.room = room;
    this.region = region;
    this.attention = new Attention(baseTitle);
    this.announcer = new Announcer();
    this.mediaSession = new MediaSessionControls();
  }

  /** Headset taps and stops go to `op` ("toggle" / "release"); returns the actions bound. */
  bindHeadset(op) {
    return this.mediaSession.bind(op);
  }

  /**
   * @param {{joined: boolean, hidden: boolean, you: ?{id: string}, talker: ?{id: string, name: string},
   *          members: Array<{id: string, name: string}>, floor: import("./ptt.js").FloorMachine}} s
   */
  update(s) {
    const youId = s.you ? s.you.id : null;
    this.mediaSession.render(
      describeMediaSession({ room: this.room, joined: s.joined, talker: s.talker, youId, floor: s.floor.state }),
    );
    for (const a of this.attention.observe({ hidden: s.hidden, youId, talker: s.talker })) {
      if (a.type === "title") document.title = a.text;
      else playTone(a.name);
    }
    const floor = { state: s.floor.state, position: s.floor.position, reason: s.floor.reason, busyHolder: s.floor.busyHolder };
    for (const text of this.announcer.observe({ youId, members: s.members, talker: s.talker, floor })) this.say(text);
  }

  /** Add one sentence to the live region (as text: names are user input). */
  say(text) {
    const line = document.createElement("p");
    line.textContent = text;
    this.region.append(line);
    while (this.region.childElementCount > KEEP) this.region.firstElementChild.remove();
  }
}
