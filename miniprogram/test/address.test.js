const { test, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { installFakeWx } = require('./fake-wx')
const { toApiAddress, chooseAddress, addressLines } = require('../utils/address')
const cart = require('../utils/cart')

// What wx.chooseAddress gives (camelCase), including fields the API does not take.
const CHOSEN = {
  userName: '张三', telNumber: '020-81167888', provinceName: '广东省', cityName: '广州市',
  countyName: '海珠区', detailInfo: '新港中路397号', postalCode: '510000', nationalCode: '510000',
  errMsg: 'chooseAddress:ok',
}

let fake
beforeEach(() => {
  fake = installFakeWx()
})

test('every field maps to the API snake_case name; nothing else is sent', () => {
  assert.deepEqual(toApiAddress(CHOSEN), {
    user_name: '张三', tel_number: '020-81167888', province_name: '广东省', city_name: '广州市',
    county_name: '海珠区', detail_info: '新港中路397号', postal_code: '510000',
  })
})

test('a missing or blank postal code is left out, not sent empty', () => {
  const { postalCode, ...withoutPostalCode } = CHOSEN
  assert.equal('postal_code' in toApiAddress(withoutPostalCode), false)
  assert.equal('postal_code' in toApiAddress({ ...CHOSEN, postalCode: '  ' }), false)
  assert.equal(toApiAddress(withoutPostalCode).detail_info, '新港中路397号')
})

test('chooseAddress resolves with the API address, or null when the shopper cancels', async () => {
  fake.addressWith(CHOSEN, 'cancel')
  assert.equal((await chooseAddress()).city_name, '广州市')
  assert.equal(await chooseAddress(), null)
  assert.equal(fake.calls.chooseAddress, 2)
})

test('a refused permission is an error that says what to do', async () => {
  fake.addressWith('chooseAddress:fail auth deny')
  await assert.rejects(chooseAddress(), { message: /Allow access to your addresses/ })
})

test('the address is shown as who and where', () => {
  assert.deepEqual(addressLines(toApiAddress(CHOSEN)), { who: '张三 020-81167888', where: '广东省广州市海珠区新港中路397号' })
  assert.deepEqual(addressLines(null), { who: '', where: '' })
})

test('an address is needed only when something in the cart ships', () => {
  assert.equal(cart.needsAddress([{ product_id: 1, quantity: 1, requires_shipping: false }]), false)
  assert.equal(cart.needsAddress([
    { product_id: 1, quantity: 1, requires_shipping: false },
    { product_id: 2, quantity: 1, requires_shipping: true },
  ]), true)
  assert.equal(cart.needsAddress([]), false)
})
