// Product list (the home page): GET /products, 20 a page, "Load more" follows `next`.
const api = require('../../utils/api')
const cart = require('../../utils/cart')
const { fetchProducts, append } = require('./list')

Page({
  data: {
    products: [],
    next: '', // URL of the next page; '' when all are shown
    loaded: false,
    loading: false,
    message: '',
    cartCount: 0,
  },

  onLoad() {
    return this.refresh()
  },

  onShow() {
    this.setData({ cartCount: cart.count() })
  },

  onPullDownRefresh() {
    return this.refresh().finally(() => wx.stopPullDownRefresh())
  },

  onReachBottom() {
    return this.loadMore()
  },

  // One load at a time: a second tap on "Load more" must not fetch the same page twice.
  async load(next) {
    if (this.busy) return
    this.busy = true
    this.setData({ loading: true, message: '' })
    try {
      const page = await fetchProducts(api, next)
      const products = next ? append(this.data.products, page.cards) : page.cards
      this.setData({ products, next: page.next, loaded: true })
    } catch (err) {
      this.setData({ message: err.detail || err.message })
    } finally {
      this.busy = false
      this.setData({ loading: false })
    }
  },

  refresh() {
    return this.load('')
  },

  loadMore() {
    if (!this.data.next) return Promise.resolve()
    return this.load(this.data.next)
  },

  openProduct(e) {
    wx.navigateTo({ url: `/pages/product/product?id=${e.currentTarget.dataset.id}` })
  },

  openCheckout() {
    wx.navigateTo({ url: '/pages/checkout/checkout' })
  },

  openOrders() {
    wx.navigateTo({ url: '/pages/orders/orders' })
  },
})
