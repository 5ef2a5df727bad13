// The delivery address: wx.chooseAddress() (WeChat's own address book, camelCase
// fields) → the API's `address` object (snake_case). Personal data: shown to
// the shopper, sent to the server, never logged.
const { call } = require('./promisify')

const FIELDS = [
  ['userName', 'user_name'],
  ['telNumber', 'tel_number'],
  ['provinceName', 'province_name'],
  ['cityName', 'city_name'],
  ['countyName', 'county_name'],
  ['detailInfo', 'detail_info'],
]

const text = (value) => (typeof value === 'string' ? value.trim() : '')

// Only the fields the API takes: the server refuses unknown ones (errMsg,
// nationalCode…). postal_code is optional, so left out when WeChat has none.
function toApiAddress(chosen) {
  const address = {}
  for (const [from, to] of FIELDS) address[to] = text(chosen[from])
  const postalCode = text(chosen.postalCode)
  if (postalCode) address.postal_code = postalCode
  return address
}

// Resolves with the API address, or null when the shopper cancelled. Other
// failures (no permission, old base library) reject with a readable message.
async function chooseAddress() {
  let chosen
  try {
    chosen = await call('chooseAddress')
  } catch (fail) {
    const errMsg = (fail && fail.errMsg) || 'chooseAddress:fail'
    if (errMsg === 'chooseAddress:fail cancel') return null
    const message = /auth den/.test(errMsg)
      ? 'Allow access to your addresses in Settings, then try again.'
      : `Could not open your addresses: ${errMsg}`
    throw Object.assign(new Error(message), { errMsg, detail: message })
  }
  return toApiAddress(chosen)
}

// Two lines for the page: who, and where.
function addressLines(address) {
  if (!address) return { who: '', where: '' }
  const where = [address.province_name, address.city_name, address.county_name, address.detail_info].join('')
  return { who: `${address.user_name} ${address.tel_number}`, where }
}

module.exports = { toApiAddress, chooseAddress, addressLines }
