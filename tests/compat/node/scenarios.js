// The real Nylas Node SDK (6.11.1) against a running Rolodex, one scenario per run:
//
//   ROLODEX_URL=http://127.0.0.1:PORT ROLODEX_TOKEN=... node scenarios.js <scenario> [args...]
//
// Each scenario runs the SDK the way an application would (the guide's examples as written,
// bar its typos) and ends by printing one line `RESULT <json>` for pytest to assert on.
// Anything else on stdout is the examples' own console.log output. Requests are recorded by
// wrapping Node's http.request (node-fetch looks it up on every request), so the test can
// check what went over the wire; the requests themselves are real and unchanged.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const requests = [];
const realRequest = http.request;
http.request = function (options, ...rest) {
  const target = typeof options === 'string' ? new URL(options) : options;
  requests.push({ method: target.method || 'GET', path: target.path || target.pathname });
  return realRequest.call(this, options, ...rest);
};

const Nylas = require('nylas');

const URL_ = process.env.ROLODEX_URL;
const TOKEN = process.env.ROLODEX_TOKEN;
if (!URL_ || TOKEN === undefined) {
  console.error('ROLODEX_URL and ROLODEX_TOKEN must be set');
  process.exit(2);
}

// The guide's setup, plus the server address (wire reference §8).
Nylas.config({ clientId: 'client-id', clientSecret: 'client-secret', apiServer: URL_ });
const nylas = Nylas.with(TOKEN);

function result(value) {
  process.stdout.write(`RESULT ${JSON.stringify({ value, requests })}\n`);
}

// The SDK's NylasApiError (nylas/lib/models/nylas-api-error) is compiled to ES5, where a
// subclass of Error loses its prototype: `instanceof NylasApiError` is false even for its own
// errors. What its constructor leaves behind is the status-name table it attaches.
function describeError(err) {
  return {
    isNylasApiError: err.errorMapping !== undefined,
    name: err.name,
    statusCode: err.statusCode,
    type: err.type,
    message: err.message,
  };
}

function plain(contact) {
  return contact.toJSON();
}

const scenarios = {
  // Guide: list five contacts and print them.
  async list5() {
    const contacts = await nylas.contacts.list({ limit: 5 });
    for (const contact of contacts) {
      console.log(contact);
    }
    return contacts.map((c) => c.id);
  },

  // Guide: read one contact. The guide writes contacts.get, which 6.x does not have; find
  // is the SDK's read-one call.
  async find(id) {
    const contact = await nylas.contacts.find(id);
    console.log(contact);
    return {
      json: plain(contact),
      givenName: contact.givenName,
      emailAddresses: contact.emailAddresses.map((e) => ({ type: e.type, email: e.email })),
      groups: contact.groups.map((g) => ({
        id: g.id,
        object: g.object,
        accountId: g.accountId,
        name: g.name,
        path: g.path,
      })),
      hasGet: typeof nylas.contacts.get === 'function',
    };
  },

  // Guide: the picture, saved to a file. The guide uses `contact` before its promise has
  // resolved; awaited here. getPicture() resolves to the body decoded as UTF-8 text.
  async picture(id, file) {
    const contact = await nylas.contacts.find(id);
    const picture = await contact.getPicture();
    await new Promise((resolve, reject) =>
      fs.writeFile(file, picture, 'binary', (err) => {
        if (err) return reject(err);
        console.log('The picture was saved!');
        return resolve();
      })
    );
    console.log(contact.pictureUrl);
    return {
      pictureUrl: contact.pictureUrl,
      type: typeof picture,
      length: picture.length,
      head: Array.from(picture.slice(0, 8)).map((ch) => ch.codePointAt(0)),
    };
  },

  // Guide (curl only, but Node has it): the account's contact groups.
  async groups() {
    const groups = await nylas.contacts.groups();
    return groups.map((g) => ({
      id: g.id,
      object: g.object,
      accountId: g.accountId,
      name: g.name,
      path: g.path,
    }));
  },

  // Guide: build a contact with camelCase attributes and save it.
  async create() {
    const contact = nylas.contacts.build({
      givenName: 'My',
      middleName: 'Nylas',
      surname: 'Friend',
      notes: 'Make sure to keep in touch!',
      emailAddresses: [{ type: 'work', email: 'swag@nylas.com' }],
      phoneNumbers: [{ type: 'business', number: '(555) 555-5555' }],
      webPages: [{ type: 'homepage', url: 'nylas.com' }],
    });
    const saved = await contact.save();
    console.log(saved);
    return { id: saved.id, sameObject: saved === contact, json: plain(saved) };
  },

  // Update the SDK way: read, set fields, save(). 6.x sends "" for every string that was
  // null and the groups without their ids.
  async update(id) {
    const contact = await nylas.contacts.find(id);
    contact.jobTitle = 'Factory Owner';
    contact.emailAddresses = [{ type: 'work', email: 'swag@nylas.com' }];
    const saved = await contact.save();
    return { id: saved.id, json: plain(saved) };
  },

  // Save what was read, unchanged, then with one field set to null.
  async resave(id) {
    const contact = await nylas.contacts.find(id);
    await contact.save();
    contact.nickname = null;
    const saved = await contact.save();
    return { json: plain(saved) };
  },

  // Guide: delete a contact.
  async delete(id) {
    const answer = await nylas.contacts.delete(id);
    return { answer: answer === undefined ? null : answer };
  },

  // Every contact, paged by the SDK (pages of 100, until a short page).
  async listAll() {
    const contacts = await nylas.contacts.list();
    return contacts.map((c) => c.id);
  },

  async listLimit(limit, offset) {
    const params = { limit: Number(limit) };
    if (offset !== undefined) params.offset = Number(offset);
    const contacts = await nylas.contacts.list(params);
    return contacts.map((c) => c.id);
  },

  async count(email) {
    return {
      all: await nylas.contacts.count(),
      byEmail: await nylas.contacts.count({ email }),
    };
  },

  async ids() {
    return nylas.contacts.list({ view: 'ids' });
  },

  async byEmail(email) {
    const contacts = await nylas.contacts.list({ email });
    return contacts.map((c) => c.id);
  },

  async first() {
    const contact = await nylas.contacts.first();
    return contact.id;
  },

  async forEach() {
    const seen = [];
    await new Promise((resolve, reject) =>
      nylas.contacts.forEach(
        {},
        (contact) => seen.push(contact.id),
        (err) => (err ? reject(err) : resolve())
      )
    );
    return seen;
  },

  // Errors come back as a rejected promise; report what the caller sees.
  async findError(id) {
    try {
      await nylas.contacts.find(id);
    } catch (err) {
      return describeError(err);
    }
    throw new Error('find() resolved');
  },

  async listError() {
    try {
      await nylas.contacts.list({ limit: 5 });
    } catch (err) {
      return describeError(err);
    }
    throw new Error('list() resolved');
  },

  // Deltas: since a cursor, of the types asked for (comma lists on the command line).
  async deltasSince(cursor, includeTypes, excludeTypes) {
    const params = {};
    if (includeTypes) params.includeTypes = includeTypes.split(',');
    if (excludeTypes) params.excludeTypes = excludeTypes.split(',');
    const page = await nylas.deltas.since(cursor, params);
    return {
      cursorStart: page.cursorStart,
      cursorEnd: page.cursorEnd,
      deltas: page.deltas.map((d) => ({ object: d.object, event: d.event, id: d.id })),
    };
  },

  // The application's accounts, with its own client id and secret.
  async accounts(clientId, clientSecret, id) {
    Nylas.config({ clientId, clientSecret, apiServer: URL_ });
    const all = await Nylas.accounts.list();
    const one = await Nylas.accounts.find(id);
    const shape = (a) => ({
      id: a.id,
      accountId: a.accountId,
      emailAddress: a.emailAddress,
      provider: a.provider,
      syncState: a.syncState,
      billingState: a.billingState,
      trial: a.trial,
    });
    const info = await one.tokenInfo(TOKEN);
    const app = await Nylas.application();
    return {
      all: all.map(shape),
      one: shape(one),
      tokenState: info.state,
      tokenScopes: info.scopes,
      redirectUris: app.redirectUris,
    };
  },

  async deleteError(id) {
    try {
      await nylas.contacts.delete(id);
    } catch (err) {
      return describeError(err);
    }
    throw new Error('delete() resolved');
  },
};

async function main() {
  const [name, ...args] = process.argv.slice(2);
  const scenario = scenarios[name];
  if (!scenario) {
    console.error(`unknown scenario ${name}; one of: ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
  }
  result(await scenario(...args));
}

main().catch((err) => {
  console.error(`${path.basename(__filename)}: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
