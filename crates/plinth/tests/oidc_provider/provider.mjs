// An OpenID Connect provider for plinth's sign-in tests: the certified
// oidc-provider package with its built-in login and consent pages (any
// name signs in; the password is ignored). Usage:
//   node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Each account's e-mail is NAME@example.com, verified, except the account
// "unverified", whose e-mail is not verified. Prints "listening" when ready.
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.com`,
          email_verified: id !== 'unverified',
          name: id,
        };
      },
    };
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
