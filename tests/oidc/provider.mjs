// A real OpenID Provider (the certified `oidc-provider` package) on loopback for Skærm's
// single sign-on tests. Prints `issuer <url>` on stdout once listening.
//
// Test controls (plain HTTP on the same port, under /test/):
//   POST /test/configure?redirect=<uri>  (re)creates the provider for Skærm's callback URL
//   POST /test/user?sub=<id>&name=<n>&roles=a,b  who logs in next (no login form)
//   POST /test/rotate                    replaces the signing key with a new one (new kid)
//   POST /test/wrong-audience?on=1       re-signs issued ID tokens with another `aud`
//   GET  /test/kid                       the current signing key's kid
import http from "node:http";
import crypto from "node:crypto";
import Provider from "oidc-provider";
import * as jose from "jose";

const CLIENT_ID = "skaerm";
const CLIENT_SECRET = "skaerm-test-secret";

let port = 0;
let issuer = "";
let redirect = "http://127.0.0.1:1/unset";
let user = { sub: "mette-sso", name: "Mette SSO", roles: ["Skaerm.Staff"] };
let wrongAudience = false;
let signingKey = await newKey();
let provider = null;

async function newKey() {
  const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  jwk.kid = crypto.randomUUID();
  jwk.alg = "RS256";
  jwk.use = "sig";
  return jwk;
}

function makeProvider() {
  const p = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [redirect],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    jwks: { keys: [signingKey] },
    pkce: { required: () => true },
    conformIdTokenClaims: false,
    claims: { openid: ["sub"], profile: ["name", "skaerm_roles"] },
    scopes: ["openid", "profile"],
    features: { devInteractions: { enabled: false } },
    cookies: { keys: ["skaerm-test-cookie-key"] },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const current = { ...user };
      return {
        accountId: sub,
        async claims() {
          return { sub, name: current.name, skaerm_roles: current.roles };
        },
      };
    },
  });
  // Tampering for the wrong-audience test: the token endpoint's ID token, re-signed with the
  // provider's own key but for another audience.
  p.use(async (ctx, next) => {
    await next();
    if (wrongAudience && ctx.path === "/token" && ctx.body && ctx.body.id_token) {
      const claims = jose.decodeJwt(ctx.body.id_token);
      const key = await jose.importJWK(signingKey, "RS256");
      ctx.body.id_token = await new jose.SignJWT({ ...claims, aud: "someone-else" })
        .setProtectedHeader({ alg: "RS256", kid: signingKey.kid, typ: "JWT" })
        .sign(key);
    }
  });
  return p;
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: user.sub, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: user.sub }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

async function control(req, res, url) {
  const q = url.searchParams;
  switch (url.pathname) {
    case "/test/configure":
      redirect = q.get("redirect");
      provider = makeProvider();
      break;
    case "/test/user":
      user = { sub: q.get("sub"), name: q.get("name") || q.get("sub"), roles: (q.get("roles") || "").split(",").filter(Boolean) };
      break;
    case "/test/rotate":
      signingKey = await newKey();
      provider = makeProvider();
      break;
    case "/test/wrong-audience":
      wrongAudience = q.get("on") === "1";
      break;
    case "/test/kid":
      break;
    default:
      res.writeHead(404).end();
      return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ kid: signingKey.kid }));
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith("/test/")) return await control(req, res, url);
    if (url.pathname.startsWith("/interaction/")) return await interaction(req, res);
    return provider.callback()(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) res.writeHead(500);
    res.end(String(err));
  }
});

server.listen(0, "127.0.0.1", () => {
  port = server.address().port;
  issuer = `http://127.0.0.1:${port}`;
  provider = makeProvider();
  console.log(`issuer ${issuer}`);
});

// Exit with the parent (the test closes stdin).
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
