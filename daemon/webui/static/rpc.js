// The Transmission RPC, spoken to the same origin's /transmission/rpc.
//
// The server answers a request without the right X-Transmission-Session-Id
// with 409 and the id to use; the request is then sent again with it. This
// is what keeps another site's page from driving the daemon through the
// user's browser: it cannot read the 409's header. Basic auth, if the
// daemon wants it, is the browser's business: it asked when the page
// loaded and sends the same credentials here.

export class RPCError extends Error {}

export class RPC {
  constructor(url = '/transmission/rpc') {
    // Against the origin, never the page's own URL: a page opened as
    // http://user:pass@host/ would lend the URL its credentials, and
    // fetch refuses a URL that has any. The browser sends the ones it
    // was given for the page by itself.
    this.url = new URL(url, location.origin).href;
    this.sessionId = '';
  }

  // call sends one request and returns its "arguments", or throws an
  // RPCError that says what went wrong, ready to show.
  async call(method, args = {}) {
    const body = JSON.stringify({ method, arguments: args });
    // Twice at most: a second 409 means the server keeps changing its
    // mind, and asking forever would hide that.
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers = { 'Content-Type': 'application/json' };
      if (this.sessionId) headers['X-Transmission-Session-Id'] = this.sessionId;
      let res;
      try {
        res = await fetch(this.url, {
          method: 'POST', headers, body, credentials: 'same-origin', cache: 'no-store',
        });
      } catch (e) {
        throw new RPCError(`cannot reach the daemon (${e.message})`);
      }
      if (res.status === 409) {
        const id = res.headers.get('X-Transmission-Session-Id');
        if (!id) throw new RPCError('the daemon answered 409 without a session id');
        this.sessionId = id;
        continue;
      }
      if (res.status === 401) throw new RPCError('the daemon wants a user name and password (401): reload the page');
      if (res.status === 403) throw new RPCError('the daemon refused this request (403)');
      if (!res.ok) throw new RPCError(`${method}: HTTP ${res.status}`);
      let reply;
      try {
        reply = await res.json();
      } catch (e) {
        throw new RPCError(`${method}: the reply is not JSON`);
      }
      if (reply.result !== 'success') throw new RPCError(`${method}: ${reply.result}`);
      return reply.arguments || {};
    }
    throw new RPCError(`${method}: the session id changed twice in a row`);
  }
}
