// The one place to point the mini-program at your server. It must be an HTTPS
// origin listed under "request legal domains" in the mini-program console
// (Development → Development Settings → Server Domain); no trailing slash.
module.exports = {
  baseUrl: 'https://shop.example.com',
}
