-- JWT check for run.sh's nginx-lua auth peer (issue 16): the job sse-gateway does on a query token, in
-- access_by_lua with LuaJIT FFI calls into the libcrypto nginx already links (no OpenSSL binding module):
--   * the token is the access_token query parameter; none, or anything wrong with it: 401, no upstream request;
--   * header alg must be the configured one; HS256: HMAC-SHA256 over "header.payload" with the secret's bytes,
--     compared with CRYPTO_memcmp; ES256: ECDSA P-256 over SHA-256 of it, signature raw r||s (64 bytes);
--   * claims: exp in the future (30 s skew, as the gateway's default), nbf if present, aud equal to (or, for an
--     array, containing) the configured audience;
--   * then the token goes upstream as "Authorization: Bearer <token>" and the parameter leaves the URL (every
--     other parameter kept as it was, in order).
-- Configured once in init_by_lua (the key is loaded in the master and inherited by the worker).
local ffi = require "ffi"
local base64 = require "ngx.base64"
local cjson = require "cjson.safe"

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct ec_key_st EC_KEY;
typedef struct bio_st BIO;
typedef struct bignum_st BIGNUM;
typedef struct ECDSA_SIG_st ECDSA_SIG;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d, size_t n,
                    unsigned char *md, unsigned int *md_len);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
BIO *BIO_new_mem_buf(const void *buf, int len);
int BIO_free(BIO *a);
EVP_PKEY *PEM_read_bio_PUBKEY(BIO *bp, EVP_PKEY **x, void *cb, void *u);
EC_KEY *EVP_PKEY_get1_EC_KEY(EVP_PKEY *pkey);
ECDSA_SIG *ECDSA_SIG_new(void);
void ECDSA_SIG_free(ECDSA_SIG *sig);
BIGNUM *BN_bin2bn(const unsigned char *s, int len, BIGNUM *ret);
int ECDSA_SIG_set0(ECDSA_SIG *sig, BIGNUM *r, BIGNUM *s);
int ECDSA_do_verify(const unsigned char *dgst, int dgst_len, const ECDSA_SIG *sig, EC_KEY *eckey);
]]
local C = ffi.C

local M = {}
local alg, secret, ec_key, audience
local skew = 30
local digest = ffi.new("unsigned char[32]")
local digest_len = ffi.new("unsigned int[1]")

function M.configure(options)
    alg, audience = options.alg, options.audience
    if alg == "HS256" then
        secret = options.secret
    elseif alg == "ES256" then
        local file = assert(io.open(options.public_key_file, "rb"))
        local pem = file:read("*a")
        file:close()
        local bio = C.BIO_new_mem_buf(pem, #pem)
        local pkey = C.PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        C.BIO_free(bio)
        assert(pkey ~= nil, "cannot read the public key")
        ec_key = C.EVP_PKEY_get1_EC_KEY(pkey)
        assert(ec_key ~= nil, "not an EC public key")
    else
        error("unsupported alg " .. tostring(alg))
    end
end

local function signature_valid(input, signature)
    if alg == "HS256" then
        if #signature ~= 32 then return false end
        C.HMAC(C.EVP_sha256(), secret, #secret, input, #input, digest, digest_len)
        return C.CRYPTO_memcmp(digest, signature, 32) == 0
    end
    if #signature ~= 64 then return false end
    C.SHA256(input, #input, digest)
    local sig = C.ECDSA_SIG_new()
    local r = C.BN_bin2bn(signature, 32, nil)
    local s = C.BN_bin2bn(ffi.cast("const unsigned char *", signature) + 32, 32, nil)
    C.ECDSA_SIG_set0(sig, r, s)   -- sig owns r and s now
    local ok = C.ECDSA_do_verify(digest, 32, sig, ec_key) == 1
    C.ECDSA_SIG_free(sig)
    return ok
end

local function audience_matches(aud)
    if aud == audience then return true end
    if type(aud) == "table" then
        for _, value in ipairs(aud) do if value == audience then return true end end
    end
    return false
end

local function refuse()
    ngx.header["WWW-Authenticate"] = 'Bearer realm="nginx-lua"'
    return ngx.exit(ngx.HTTP_UNAUTHORIZED)
end

function M.access()
    local token = ngx.var.arg_access_token
    if not token or token == "" then return refuse() end
    local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
    if not h then return refuse() end
    local header = cjson.decode(base64.decode_base64url(h) or "")
    if type(header) ~= "table" or header.alg ~= alg then return refuse() end
    local signature = base64.decode_base64url(s)
    if not signature or not signature_valid(h .. "." .. p, signature) then return refuse() end
    local claims = cjson.decode(base64.decode_base64url(p) or "")
    if type(claims) ~= "table" then return refuse() end
    local now = ngx.time()
    if type(claims.exp) ~= "number" or claims.exp + skew <= now then return refuse() end
    if claims.nbf ~= nil and (type(claims.nbf) ~= "number" or claims.nbf - skew > now) then return refuse() end
    if not audience_matches(claims.aud) then return refuse() end

    ngx.req.set_header("Authorization", "Bearer " .. token)
    local rest = ("&" .. ngx.var.args):gsub("&access_token=[^&]*", "")
    ngx.req.set_uri_args(rest:sub(2))   -- proxy_pass then sends $uri?$args
end

return M
