// My orders: GET /orders (newest first, 20 a page, "Load more" follows `next`),
// each with its payment status, fulfilment and shipments; "Confirm receipt" on a
// shipped order → POST /orders/<out_trade_no>/receive.
const api = require('../../utils/api')
const { call } = require('../../utils/promisify')
const { fetchOrders, replaceOrder } = require('./view')

Page({
  data: {
    orders: [],
    next: '',
    loaded: false,
    loading: false,
    message: '',
  },

  // onShow, not onLoad: coming back from the checkout must show the new order.
  onShow() {
    return this.refresh()
  },

  onPullDownRefresh() {
    return this.refresh().finally(() => wx.stopPullDownRefresh())
  },

  onReachBottom() {
    return this.loadMore()
  },

  // One action at a time (a load, a confirmation): double taps are ignored.
  async run(action) {
    if (this.busy) return
    this.busy = true
    try {
      await action()
    } catch (err) {
      this.setData({ message: err.detail || err.message })
    } finally {
      this.busy = false
      this.setData({ loading: false })
    }
  },

  load(next) {
    return this.run(async () => {
      this.setData({ loading: true, message: '' })
      const page = await fetchOrders(api, next)
      const orders = next ? this.data.orders.concat(page.orders) : page.orders
      this.setData({ orders, next: page.next, loaded: true })
    })
  },

  refresh() {
    return this.load('')
  },

  loadMore() {
    if (!this.data.next) return Promise.resolve()
    return this.load(this.data.next)
  },

  // "Confirm receipt": asked once more, since it cannot be undone. 409 (not
  // shipped, or already confirmed elsewhere) shows the server's detail.
  receive(e) {
    const { no } = e.currentTarget.dataset
    return this.run(async () => {
      const { confirm } = await call('showModal', {
        title: 'Confirm receipt',
        content: 'Did this order arrive? This cannot be undone.',
      })
      if (!confirm) return
      this.setData({ message: '' })
      const order = await api.receiveOrder(no)
      this.setData({ orders: replaceOrder(this.data.orders, order) })
      wx.showToast({ title: 'Receipt confirmed', icon: 'success' })
    })
  },

  openProducts() {
    wx.navigateTo({ url: '/pages/products/products' })
  },
})
