// tests/rp/rp.js — a relying party built on openid-client (OpenID Certified), driven step by step by
// tests/integration/test_oidc_rp.py over stdin/stdout (one JSON object a line each way). The library
// does everything an RP does itself: discovery, the authorization URL (PKCE S256, state, nonce), the
// callback (code exchange; the ID token's signature via the JWKS, iss, aud, azp, exp, iat, nonce,
// at_hash), refresh (a new ID token, checked again), userinfo (its sub checked against the ID
// token's). The test plays the browser (the sign-in page) between the steps.
// Usage: node rp.js ISSUER CLIENT_ID REDIRECT_URI   (NODE_EXTRA_CA_CERTS trusts the test certificate)
'use strict';
const readline = require('readline');
const { Issuer, generators, errors } = require('openid-client');

const [issuerUrl, clientId, redirectUri] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let client, issuer, flow = {}, tokens;

const steps = {
  async discover() {
    issuer = await Issuer.discover(issuerUrl);
    client = new issuer.Client({ client_id: clientId, redirect_uris: [redirectUri], response_types: ['code'],
                                 token_endpoint_auth_method: 'none', id_token_signed_response_alg: 'ES256' });
    return { issuer: issuer.issuer, metadata: issuer.metadata };
  },
  async authorize(m) {
    flow = { verifier: generators.codeVerifier(), state: generators.state(), nonce: generators.nonce() };
    const params = { scope: m.scope, state: flow.state, nonce: flow.nonce,
                     code_challenge: generators.codeChallenge(flow.verifier), code_challenge_method: 'S256' };
    if (m.prompt) params.prompt = m.prompt;
    if (m.max_age !== undefined) params.max_age = m.max_age;
    return { url: client.authorizationUrl(params), nonce: flow.nonce, state: flow.state };
  },
  async callback(m) {
    const params = client.callbackParams(m.url);
    const checks = { code_verifier: flow.verifier, state: flow.state, nonce: flow.nonce, response_type: 'code' };
    if (m.max_age !== undefined) checks.max_age = m.max_age;
    tokens = await client.callback(redirectUri, params, checks);
    return { claims: tokens.claims(), scope: tokens.scope, has_refresh: !!tokens.refresh_token };
  },
  async refresh() {
    tokens = await client.refresh(tokens.refresh_token);
    return { claims: tokens.claims(), has_refresh: !!tokens.refresh_token };
  },
  async userinfo() {
    return { userinfo: await client.userinfo(tokens) }; // passing the token set: sub must match the ID token's
  },
  async end_session(m) { // RP-initiated logout: the URL the RP sends the browser to
    return { url: client.endSessionUrl({ id_token_hint: tokens, post_logout_redirect_uri: m.uri, state: m.state }) };
  },
  async tamper() { // the library must refuse an ID token whose signature does not hold
    const [h, p, s] = tokens.id_token.split('.');
    const bad = Buffer.from(s, 'base64url');
    bad[10] ^= 1;
    try {
      await client.validateIdToken(Object.assign(Object.create(Object.getPrototypeOf(tokens)), tokens,
                                                 { id_token: [h, p, bad.toString('base64url')].join('.') }));
      return { refused: false };
    } catch (e) {
      return { refused: true, message: e.message };
    }
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const m = JSON.parse(line);
  try {
    out(Object.assign({ ok: true }, await steps[m.step](m)));
  } catch (e) {
    out({ ok: false, name: e.name, error: e.error || null, message: e.message,
          op_error: e instanceof errors.OPError, rp_error: e instanceof errors.RPError });
  }
});
rl.on('close', () => process.exit(0));
