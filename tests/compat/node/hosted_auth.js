// The Node SDK's hosted authentication, for tests/api/test_signin_browser.py:
//   node hosted_auth.js url REDIRECT_URI STATE [PROVIDER]   prints urlForAuthentication()
//   node hosted_auth.js token CODE                         prints exchangeCodeForToken()
// ROLODEX_URL, ROLODEX_CLIENT_ID and ROLODEX_CLIENT_SECRET say where and as whom.
'use strict';
const Nylas = require('nylas');

Nylas.config({
  clientId: process.env.ROLODEX_CLIENT_ID,
  clientSecret: process.env.ROLODEX_CLIENT_SECRET,
  apiServer: process.env.ROLODEX_URL,
});

async function main() {
  const [what, ...args] = process.argv.slice(2);
  if (what === 'url') {
    const [redirectURI, state, provider] = args;
    const options = {redirectURI, state, scopes: ['contacts']};
    if (provider) options.provider = provider;
    process.stdout.write(JSON.stringify({url: Nylas.urlForAuthentication(options)}));
  } else if (what === 'token') {
    try {
      const token = await Nylas.exchangeCodeForToken(args[0]);
      const {accessToken, accountId, emailAddress, provider, tokenType} = token;
      process.stdout.write(
        JSON.stringify({token: {accessToken, accountId, emailAddress, provider, tokenType}}),
      );
    } catch (error) {
      process.stdout.write(JSON.stringify({error: error.message}));
    }
  } else {
    throw new Error(`unknown command ${what}`);
  }
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
