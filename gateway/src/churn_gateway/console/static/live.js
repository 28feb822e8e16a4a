// The live feed: a minimal Socket.IO v5 client over an Engine.IO v4 WebSocket (no polling),
// enough for the gateway's read-only feed: connect with auth, events, acknowledged `reauth`,
// ping/pong, and reconnecting with a fresh token. No third-party script is needed.
//
// Engine.IO packets: 0 open, 1 close, 2 ping, 3 pong, 4 message. Socket.IO packets inside a
// message: 0 connect, 1 disconnect, 2 event, 3 ack, 4 connect_error. The default namespace
// "/" is implied; events are JSON arrays [name, payload], with an ack id before them.

const RECONNECT_DELAYS_MS = [500, 1000, 2000, 5000, 10000];

export class LiveFeed {
  /** ``session``: the Session (its current access token authenticates the socket). */
  constructor(session) {
    this.session = session;
    this.handlers = new Map();
    this.statusHandlers = new Set();
    this.socket = null;
    this.status = "offline";
    this.attempt = 0;
    this.stopped = true;
    this.nextAck = 0;
    this.acks = new Map();
    this.retry = null;
    this.session.onToken((token) => {
      if (token === null) this.stop();
      else if (this.status === "live") this.reauth(token);
    });
  }

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(handler);
    return () => this.handlers.get(event).delete(handler);
  }

  onStatus(handler) {
    this.statusHandlers.add(handler);
    handler(this.status);
    return () => this.statusHandlers.delete(handler);
  }

  #setStatus(status) {
    this.status = status;
    for (const handler of this.statusHandlers) handler(status);
  }

  start() {
    this.stopped = false;
    this.#open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.#setStatus("offline");
  }

  #open() {
    if (this.stopped || !this.session.accessToken) return;
    const url = new URL("/socket.io/?EIO=4&transport=websocket", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    this.socket = socket;
    this.#setStatus("connecting");
    socket.addEventListener("message", (message) => this.#receive(socket, String(message.data)));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.#reconnect(false);
    });
  }

  async #reconnect(refreshFirst) {
    if (this.stopped) return;
    this.#setStatus("reconnecting");
    const delay = RECONNECT_DELAYS_MS[Math.min(this.attempt, RECONNECT_DELAYS_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.retry);
    this.retry = setTimeout(async () => {
      if (refreshFirst) {
        try {
          await this.session.refresh();
        } catch {
          return;
        }
      }
      this.#open();
    }, delay);
  }

  #send(packet) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(packet);
  }

  #receive(socket, data) {
    if (socket !== this.socket) return;
    const engineType = data[0];
    if (engineType === "0") {
      this.#send(`40${JSON.stringify({ token: this.session.accessToken })}`);
    } else if (engineType === "2") {
      this.#send("3");
    } else if (engineType === "4") {
      this.#socketPacket(data.slice(1));
    }
  }

  #socketPacket(packet) {
    const type = packet[0];
    if (type === "0") {
      this.attempt = 0;
      this.#setStatus("live");
      this.#dispatch("connect", null);
    } else if (type === "4") {
      // connect_error (unauthorized): a fresh token may help.
      this.#drop();
      this.#reconnect(true);
    } else if (type === "1") {
      // The server disconnected us (an expired credential): reconnect with a fresh token.
      this.#drop();
      this.#reconnect(true);
    } else if (type === "2" || type === "3") {
      const match = /^(\d*)(\[.*)$/s.exec(packet.slice(1));
      if (!match) return;
      const args = JSON.parse(match[2]);
      if (type === "2") this.#dispatch(args[0], args[1]);
      else {
        const resolve = this.acks.get(Number(match[1]));
        this.acks.delete(Number(match[1]));
        if (resolve) resolve(args[0]);
      }
    }
  }

  #drop() {
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000);
  }

  #dispatch(event, payload) {
    for (const handler of this.handlers.get(event) || []) {
      try {
        handler(payload);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** Hand the open socket a fresh access token (acknowledged by the server). */
  reauth(token) {
    const id = this.nextAck++;
    const answer = new Promise((resolve) => {
      this.acks.set(id, resolve);
      setTimeout(() => {
        if (this.acks.delete(id)) resolve({ ok: false, error: "timeout" });
      }, 5000);
    });
    this.#send(`42${id}${JSON.stringify(["reauth", { token }])}`);
    return answer;
  }
}
