// App entry. Logs in at launch so the first request does not wait for it;
// utils/auth.js reuses a stored token until it expires.
const config = require('./utils/config')
const auth = require('./utils/auth')

App({
  globalData: {
    baseUrl: config.baseUrl, // edit utils/config.js, the request wrapper reads it there
    token: null, // mirror of the stored token (utils/auth.js keeps it current)
  },

  onLaunch() {
    auth.getToken()
      .then((token) => { this.globalData.token = token })
      // Not fatal: the first request that needs a token tries again.
      .catch((err) => console.warn('login failed:', err.detail || err.message))
  },
})
